// The React hook and the Vue composable of docs/embedding.md, as a brand's team copies them:
// each pair of blocks is bundled with esbuild as it stands (importing `@livetally/sdk`, the
// web/sdk workspace, and react or vue from node_modules), served to a page of another origin,
// and must show the live count, take taps that the node counts exactly once, and follow the
// campaign to its end.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { build } from 'esbuild';
import {
  ARTIFACTS, ROOT, api, createCampaign, eventually, newPage, startNodeAndBrowser, stats, stopNodeAndBrowser, waitAttr,
} from './helpers.mjs';

/** The blocks of docs/embedding.md's section `heading`, in order, as `{lang, body}`. */
function recipe(heading) {
  const doc = readFileSync(join(ROOT, 'docs/embedding.md'), 'utf8');
  const start = doc.indexOf(`\n## ${heading}\n`);
  assert.ok(start >= 0, `docs/embedding.md has a section "${heading}"`);
  const end = doc.indexOf('\n## ', start + 1);
  const section = doc.slice(start, end < 0 ? undefined : end);
  return [...section.matchAll(/```(\w+)\n([\s\S]*?)```/g)].map(([, lang, body]) => ({ lang, body }));
}

/**
 * Writes `files` (name → source) into a folder under tests/artifacts (inside the repository,
 * so node_modules resolves) and bundles `entry` for the browser.
 */
async function bundle(name, files, entry, options = {}) {
  const dir = join(ARTIFACTS, 'recipes', name);
  mkdirSync(dir, { recursive: true });
  for (const [file, source] of Object.entries(files)) writeFileSync(join(dir, file), source);
  const out = await build({
    entryPoints: [join(dir, entry)], bundle: true, format: 'esm', write: false, jsx: 'automatic', logLevel: 'warning',
    define: { 'process.env.NODE_ENV': '"production"' }, ...options,
  });
  return out.outputFiles[0].text;
}

/**
 * The brand's site, another origin than the node: serves its page and `site.script` (a
 * bundle) from its own port on 127.0.0.1 (Chromium keeps other addresses off loopback).
 */
function startSite() {
  const site = { script: '', base: '', server: null };
  site.server = createServer((req, res) => {
    if (req.url === '/app.js') {
      res.writeHead(200, { 'content-type': 'text/javascript' }).end(site.script);
    } else if (req.url === '/') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end('<!doctype html><html lang="en"><head>'
        + '<meta charset="utf-8"><title>Brand</title></head><body><div id="app"></div>'
        + '<script type="module" src="/app.js"></script></body></html>');
    } else {
      res.writeHead(req.url === '/favicon.ico' ? 204 : 404).end();
    }
  });
  return new Promise((resolve) => {
    site.server.listen(0, '127.0.0.1', () => {
      site.base = `http://127.0.0.1:${site.server.address().port}`;
      resolve(site);
    });
  });
}

async function likes(node, id) {
  return (await stats(node, id)).interactions.like || 0;
}

/** The page counts itself, shows taps at once, counts them once, and shows the end. */
async function exercise(page, node, id) {
  await waitAttr(page, '.live-bar', 'data-state', 'live');
  await page.waitForFunction(() => document.querySelector('.viewers').textContent === '1');
  const like = page.locator('.live-bar button[data-kind="like"]');
  for (let i = 0; i < 3; i++) await like.click();
  await eventually(async () => (await likes(node, id)) === 3, { what: 'three likes counted' });
  await page.waitForFunction(() => document.querySelector('button[data-kind="like"] .count').textContent === '3');
  assert.equal(await page.locator('.live-bar button').count(), 2, 'one button per kind');
  const ended = await api(node, `/api/v1/campaigns/${id}/end`, { method: 'POST' });
  assert.equal(ended.status, 200);
  await waitAttr(page, '.live-bar', 'data-state', 'ended');
  assert.equal(await like.isDisabled(), true);
  assert.equal(await likes(node, id), 3, 'counted once');
  assert.deepEqual(page.errors, []);
}

describe('recipes of docs/embedding.md', { timeout: 180_000 }, () => {
  let node;
  let browser;
  let site;

  before(async () => {
    ({ node, browser } = await startNodeAndBrowser());
    site = await startSite();
  });

  after(async () => {
    site?.server.close();
    await stopNodeAndBrowser(node, browser);
  });

  /** A new page of the site running `script`. */
  async function openSite(script) {
    site.script = script;
    const page = await newPage(browser);
    await page.goto(`${site.base}/`);
    return page;
  }

  it('React: useLivetally as the docs write it', async () => {
    await createCampaign(node, { id: 'react-launch', title: 'React', kinds: ['like', 'cheer'] });
    const [hook, usage] = recipe('React: `useLivetally`');
    assert.deepEqual([hook.lang, usage.lang], ['js', 'jsx']);
    const script = await bundle('react', {
      'useLivetally.js': hook.body,
      'LiveBar.jsx': usage.body.replace("'https://live.example.com'", `'${node.base}'`).replace("'launch-2026'", "'react-launch'"),
      'main.jsx': `import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { LiveBar } from './LiveBar.jsx';
createRoot(document.getElementById('app')).render(<StrictMode><LiveBar /></StrictMode>);
`,
    }, 'main.jsx');
    const page = await openSite(script);
    await exercise(page, node, 'react-launch');
    await page.context().close();
  });

  it('Vue: the useLivetally composable as the docs write it', async () => {
    await createCampaign(node, { id: 'vue-launch', title: 'Vue', kinds: ['like', 'cheer'] });
    const [composable, usage] = recipe('Vue: `useLivetally`');
    const script = await bundle('vue', {
      'useLivetally.js': composable.body,
      'main.js': usage.body.replace("'https://live.example.com'", `'${node.base}'`).replace("'launch-2026'", "'vue-launch'"),
    }, 'main.js', {
      // The full build, with the template compiler, as the block's comment says.
      alias: { vue: 'vue/dist/vue.esm-bundler.js' },
      define: {
        'process.env.NODE_ENV': '"production"',
        __VUE_OPTIONS_API__: 'true', __VUE_PROD_DEVTOOLS__: 'false', __VUE_PROD_HYDRATION_MISMATCH_DETAILS__: 'false',
      },
    });
    const page = await openSite(script);
    await exercise(page, node, 'vue-launch');
    await page.context().close();
  });
});
