// A brand's page on ANOTHER origin (its own little server on a second port) embeds the
// widget with the two lines of docs/embedding.md and uses the SDK: the viewer is counted,
// sees the count, every tap counts exactly once (through held acks, a reload, and the
// network going away and coming back), and a private campaign admits the viewer that a
// join token minted with stock JWT libraries names. The page has a strict CSP of its own,
// so the widget is shown to work under the policy the docs recommend.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { connect as tcpConnect, createServer as createTcpServer } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import jwt from 'jsonwebtoken';
import {
  ROOT, api, artifact, createCampaign, eventually, launchBrowser, newPage, startNode, stats, stopNode, waitAttr,
} from './helpers.mjs';

/** The `--join-secret` the brand's backend shares with the node. */
const SECRET = 'brand-backend-join-secret-0123456789abcdef'; // 32+ bytes, as HS256 wants
/** While the node is away or frozen the browser logs failed sockets and requests: expected. */
const DOWN = [/WebSocket connection to .* failed/i, /Failed to load resource/i, /net::ERR_/i];
const WIDGET = 'livetally-widget';

/**
 * The brand's site: serves `site.pages[name]` at `/name` from its own port, so it is another
 * origin than the node. A page gets a strict CSP that allows scripts and connections to
 * the `nodes` origins only (and one inline module, by nonce), and no inline style.
 */
function startSite(nodes) {
  const pages = {};
  const server = createServer((req, res) => {
    const page = pages[new URL(req.url, 'http://x').pathname.slice(1)];
    if (!page) {
      res.writeHead(req.url === '/favicon.ico' ? 204 : 404).end();
      return;
    }
    const nonce = Math.random().toString(36).slice(2);
    const sockets = nodes.map((n) => n.replace(/^http/, 'ws')).join(' ');
    const headers = { 'content-type': 'text/html; charset=utf-8' };
    if (page.csp !== false) {
      headers['content-security-policy'] = `default-src 'self'; script-src 'nonce-${nonce}' ${nodes.join(' ')}; `
        + `connect-src 'self' ${nodes.join(' ')} ${sockets}; style-src 'self'; img-src 'self' data:`;
    }
    res.writeHead(200, headers);
    res.end(page.html(nonce));
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      const base = `http://127.0.0.1:${server.address().port}`;
      resolve({
        server,
        base,
        /** Opens `html` (a function of the nonce) in `page` as the site's `/name`. */
        async show(page, name, html, { csp = true } = {}) {
          pages[name] = { html, csp };
          await page.goto(`${base}/${name}`);
        },
      });
    });
  });
}

/** The page a brand writes: its own content, the two lines, and (optionally) SDK code. */
function brandPage({ src, widget, script = '', head = '' }) {
  return (nonce) => `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Brand launch</title>
<script type="module" src="${src}/embed/v1.js"></script>${head}
</head><body>
<h1>The new phone, live</h1>
${widget}
${script ? `<script type="module" nonce="${nonce}">${script}</script>` : ''}
</body></html>`;
}

/**
 * A TCP relay in front of the node, for cutting the network under the browser: `cut()`
 * drops every connection and refuses new ones until `restore()`.
 */
function startRelay(target) {
  const open = new Set();
  let refusing = false;
  const server = createTcpServer((client) => {
    if (refusing) {
      client.destroy();
      return;
    }
    const upstream = tcpConnect(target, '127.0.0.1');
    const pair = [client, upstream];
    open.add(pair);
    const drop = () => {
      open.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => resolve({
      base: `http://127.0.0.1:${server.address().port}`,
      cut() {
        refusing = true;
        for (const [a, b] of open) { a.destroy(); b.destroy(); }
        open.clear();
      },
      restore() { refusing = false; },
      close() { this.cut(); server.close(); },
    }));
  });
}

/** The launch page: the two lines of docs/embedding.md, nothing else of ours. */
function launchPage(node) {
  return brandPage({ src: node.base, widget: `<${WIDGET} campaign="brand-launch"></${WIDGET}>` });
}

/** What the widget exposes to the page (state, viewers, pending taps, admitted viewer). */
function widgetInfo(page, selector = WIDGET) {
  return page.$eval(selector, (w) => ({ state: w.state, viewers: w.viewers, pending: w.pending, viewer: w.viewer }));
}

/** Waits until `inner` (in the widget's shadow root) has `attr` equal to `value`. */
async function waitInWidget(page, inner, attr, value, timeout = 15_000) {
  const read = ([w, s, a]) => {
    const e = document.querySelector(w)?.shadowRoot?.querySelector(s);
    return e ? e.getAttribute(a) : '(no element)';
  };
  try {
    await page.waitForFunction(([w, s, a, v]) => {
      const e = document.querySelector(w)?.shadowRoot?.querySelector(s);
      return e && e.getAttribute(a) === v;
    }, [WIDGET, inner, attr, String(value)], { timeout, polling: 50 });
  } catch {
    const now = await page.evaluate(read, [WIDGET, inner, attr]);
    throw new Error(`${inner} [${attr}] stayed ${JSON.stringify(now)}, wanted ${JSON.stringify(String(value))}`);
  }
}

/** Waits until the widget's `kind` button shows `n`. */
function waitCount(page, kind, n) {
  return waitInWidget(page, `button[data-kind="${kind}"]`, 'data-count', n);
}

async function waitPending(page, n, selector = WIDGET) {
  await page.waitForFunction(([s, v]) => document.querySelector(s)?.pending === v, [selector, n], { polling: 50 });
}

async function tap(page, kind, times, widget = WIDGET) {
  const button = page.locator(`${widget} button[data-kind="${kind}"]`);
  for (let i = 0; i < times; i++) await button.click();
}

async function interactions(node, id) {
  return (await stats(node, id)).interactions;
}

/** Runs a docs/embedding.md code block (the first ```lang block that contains `marker`). */
function docSnippet(lang, marker) {
  const doc = readFileSync(join(ROOT, 'docs/embedding.md'), 'utf8');
  const blocks = [...doc.matchAll(/```(\w+)\n([\s\S]*?)```/g)].filter(([, l, body]) => l === lang && body.includes(marker));
  assert.ok(blocks.length > 0, `docs/embedding.md has a ${lang} block with ${marker}`);
  return blocks[0][2];
}

describe('embedded on another origin', { timeout: 240_000 }, () => {
  let node;
  let browser;
  let site;
  let relay;

  before(async () => {
    node = await startNode({ extra: ['--join-secret', SECRET] });
    relay = await startRelay(node.port);
    browser = await launchBrowser();
    site = await startSite([node.base, relay.base]);
    await createCampaign(node, { id: 'brand-launch', title: 'Phone launch', kinds: ['like', 'cheer', 'share'] });
  });

  after(async () => {
    await browser?.close();
    relay?.close();
    site?.server.close();
    await stopNode(node);
  });

  it('is counted, shows the count, and counts every tap once', async () => {
    const page = await newPage(browser, { viewport: { width: 390, height: 844 } });
    const lookups = [];
    page.on('request', (r) => {
      if (new URL(r.url()).pathname === '/api/v1/campaigns/brand-launch') lookups.push(r.url());
    });
    await site.show(page, 'launch', launchPage(node));
    await waitAttr(page, WIDGET, 'data-state', 'live');
    // One look at the campaign per page load (for a launch's million loads, not one per attribute).
    assert.equal(lookups.length, 1, lookups.join(', '));
    await eventually(async () => (await stats(node, 'brand-launch')).viewers === 1, { what: '1 viewer' });
    await waitAttr(page, WIDGET, 'data-viewers', '1');
    assert.equal(await page.locator(`${WIDGET} .n`).textContent(), '1');
    assert.equal(await page.locator(`${WIDGET} .label`).textContent(), 'watching now');
    // The campaign's kinds but `share`, each a named button.
    assert.deepEqual(await page.locator(`${WIDGET} button`).evaluateAll((bs) => bs.map((b) => b.dataset.kind)), ['like', 'cheer']);
    await page.getByRole('button', { name: 'Like' }).waitFor();
    await page.getByRole('button', { name: 'Cheer' }).waitFor();

    // Phone-first: touch targets of at least 48 px.
    const heights = await page.locator(`${WIDGET} button`).evaluateAll((bs) => bs.map((b) => b.getBoundingClientRect().height));
    assert.ok(heights.every((h) => h >= 48), `button heights ${heights}`);

    await tap(page, 'like', 5);
    await tap(page, 'cheer', 2);
    // The keyboard reaches the first button, shows where it is, and taps with Enter and Space.
    await page.click('h1'); // focus back to the page, before the widget
    await page.keyboard.press('Tab');
    const focused = await page.$eval(WIDGET, (w) => {
      const b = w.shadowRoot.activeElement;
      const style = b && getComputedStyle(b);
      return b && { kind: b.dataset.kind, outline: `${style.outlineStyle} ${style.outlineWidth}` };
    });
    assert.deepEqual(focused, { kind: 'like', outline: 'solid 3px' });
    await page.keyboard.press('Enter');
    await page.keyboard.press('Space');
    await waitPending(page, 0);
    assert.deepEqual(await interactions(node, 'brand-launch'), { like: 7, cheer: 2, share: 0 });
    await waitCount(page, 'like', '7');
    await waitCount(page, 'cheer', '2');

    // A second viewer elsewhere: both widgets show 2.
    const other = await newPage(browser);
    await site.show(other, 'launch', launchPage(node));
    await waitAttr(other, WIDGET, 'data-viewers', '2');
    await waitAttr(page, WIDGET, 'data-viewers', '2');
    await other.context().close();
    await waitAttr(page, WIDGET, 'data-viewers', '1');
    // Screen readers heard the count politely.
    const live = page.locator(`${WIDGET} [aria-live="polite"]`);
    await eventually(async () => /watching now/.test(await live.textContent()), { what: 'a polite announcement' });
    assert.deepEqual(page.errors, []);
    await page.context().close();
  });

  it('the SDK on the page: interact() resolves once the node has counted it', async () => {
    const page = await newPage(browser);
    await site.show(page, 'sdk', brandPage({
      src: node.base,
      widget: `<${WIDGET} campaign="brand-launch" kinds="cheer,like" lang="zh-CN"></${WIDGET}>`,
      script: `
        import { connect } from '${node.base}/sdk/v1/livetally.js';
        const client = connect({ base: '${node.base}', campaign: 'brand-launch' });
        window.acks = [];
        client.on('ack', (a) => window.acks.push(a.seq));
        window.lt = client;`,
    }));
    await waitAttr(page, WIDGET, 'data-state', 'live');
    // The widget in Chinese, with the kinds in the order asked for.
    assert.deepEqual(await page.locator(`${WIDGET} button`).evaluateAll((bs) => bs.map((b) => b.dataset.kind)), ['cheer', 'like']);
    assert.equal(await page.locator(`${WIDGET} .label`).textContent(), '人正在观看');
    await page.getByRole('button', { name: '点赞' }).waitFor();
    // Switching the language re-renders in place, without reconnecting.
    await page.$eval(WIDGET, (w) => {
      window.firstClient = w.client;
      w.setAttribute('lang', 'en');
    });
    await page.getByRole('button', { name: 'Like' }).waitFor();
    assert.ok(await page.$eval(WIDGET, (w) => w.client === window.firstClient && w.client.state === 'open'));
    assert.equal(await page.locator(`${WIDGET} .state-text`).textContent(), 'Live');
    await page.waitForFunction(() => window.lt && window.lt.state === 'open');
    const before = await interactions(node, 'brand-launch');
    const seq = await page.evaluate(async () => {
      await window.lt.interact('cheer', 3);
      return window.acks[window.acks.length - 1];
    });
    assert.ok(seq >= 1, `an ack came before the promise resolved (${seq})`);
    // Resolved means stored: the API already has it, with nothing to wait for.
    const after = await interactions(node, 'brand-launch');
    assert.equal(after.cheer, before.cheer + 3);
    assert.equal(after.like, before.like);
    // The widget (another client on the page) sees the page's own cheers in the next frame.
    await waitCount(page, 'cheer', String(after.cheer));
    const err = await page.evaluate(() => window.lt.interact('nope').then(() => 'resolved', (e) => e.code));
    assert.equal(err, 'unknown_kind');
    assert.deepEqual(page.errors, []);
    await page.context().close();
  });

  it('taps held by a frozen node survive a reload and count once', async () => {
    const page = await newPage(browser, { allow: DOWN });
    await site.show(page, 'launch', launchPage(node));
    await waitAttr(page, WIDGET, 'data-state', 'live');
    const before = (await interactions(node, 'brand-launch')).like;
    node.proc.kill('SIGSTOP'); // the socket stays open, but nothing is acknowledged
    try {
      await tap(page, 'like', 5);
      await waitPending(page, 5);
      await waitCount(page, 'like', String(before + 5));
      // The page's own origin keeps them, not the node's.
      assert.ok(await page.evaluate(() => Object.keys(localStorage).some((k) => k.startsWith('livetally.'))));
      await page.reload({ waitUntil: 'commit' });
    } finally {
      node.proc.kill('SIGCONT');
    }
    // The node now reads the old socket's frames and its close, and may or may not count
    // them before the reloaded page resumes the session: either way each tap counts once.
    await waitAttr(page, WIDGET, 'data-state', 'live', 30_000);
    await waitPending(page, 0);
    await eventually(async () => (await interactions(node, 'brand-launch')).like === before + 5, { what: `${before + 5} likes` });
    await waitCount(page, 'like', String(before + 5));
    assert.equal((await interactions(node, 'brand-launch')).like, before + 5);
    await page.context().close();
  });

  it('offline: says so, keeps the taps, and resumes when the network is back', async () => {
    await createCampaign(node, { id: 'brand-offline', title: 'Offline', kinds: ['like'] });
    const page = await newPage(browser, { allow: DOWN });
    const context = page.context();
    await site.show(page, 'relayed', brandPage({ src: relay.base, widget: `<${WIDGET} campaign="brand-offline"></${WIDGET}>` }));
    await waitAttr(page, WIDGET, 'data-state', 'live');
    await tap(page, 'like', 2);
    await waitPending(page, 0);
    // Acked is not yet shown: the stats frame with the 2 comes at the next tick, and a
    // cut before it would leave the widget with the count before the taps.
    await waitCount(page, 'like', '2');

    await context.setOffline(true);
    relay.cut(); // the network is gone: the socket drops and no new one gets through
    try {
      await waitAttr(page, WIDGET, 'data-state', 'reconnecting');
      await waitInWidget(page, '.card', 'data-offline', 'true');
      assert.match(await page.locator(`${WIDGET} .state-text`).textContent(), /Offline/);
      await tap(page, 'like', 3);
      await waitPending(page, 3);
      await waitCount(page, 'like', '5');
      assert.equal((await interactions(node, 'brand-offline')).like, 2);
    } finally {
      relay.restore();
      await context.setOffline(false);
    }
    await waitAttr(page, WIDGET, 'data-state', 'live', 30_000);
    await waitPending(page, 0);
    assert.equal((await interactions(node, 'brand-offline')).like, 5);
    await waitCount(page, 'like', '5');
    await context.close();
  });

  it('ended: the widget says so and shows the final totals', async () => {
    await createCampaign(node, { id: 'brand-ended', title: 'Over soon', kinds: ['like'] });
    const page = await newPage(browser);
    await site.show(page, 'ended', brandPage({ src: node.base, widget: `<${WIDGET} campaign="brand-ended"></${WIDGET}>` }));
    await waitAttr(page, WIDGET, 'data-state', 'live');
    await tap(page, 'like', 4);
    await waitPending(page, 0);
    const r = await api(node, '/api/v1/campaigns/brand-ended/end', { method: 'POST' });
    assert.equal(r.status, 200, r.text);
    await waitAttr(page, WIDGET, 'data-state', 'ended');
    assert.equal(await page.locator(`${WIDGET} .state-text`).textContent(), 'Event ended');
    assert.ok(await page.locator(`${WIDGET} button[data-kind="like"]`).isDisabled());
    await waitCount(page, 'like', '4');
    // A widget for a campaign that does not exist says that instead.
    await site.show(page, 'missing', brandPage({ src: node.base, widget: `<${WIDGET} campaign="no-such-launch"></${WIDGET}>` }));
    await waitAttr(page, WIDGET, 'data-state', 'missing');
    assert.equal(await page.locator(`${WIDGET} button`).count(), 0);
    await page.context().close();
  });

  it('a private campaign admits the viewer its JWT names (minted with jsonwebtoken and PyJWT, as the docs show)', async () => {
    await createCampaign(node, { id: 'launch-2026', title: 'VIP preview', access: 'token', kinds: ['like'] });
    // The docs' own three-line snippets, run as a brand's backend would run them.
    const env = { ...process.env, LIVETALLY_JOIN_SECRET: SECRET };
    // (Not execFileSync: a blocked event loop lets the node close the tests' idle
    // keep-alive connection under them.)
    const run = async (cmd, args, opts) => {
      const { stdout, stderr } = await promisify(execFile)(cmd, args, { env, encoding: 'utf8', ...opts });
      assert.equal(stderr, '', `${cmd} warned`);
      return stdout.trim();
    };
    const fromNode = await run('node', ['--input-type=module', '-e',
      `const user = { id: 'brand-user-node-1' };\n${docSnippet('js', 'jsonwebtoken')}\nconsole.log(token);`], { cwd: ROOT });
    const fromPython = await run('python3', ['-c',
      `user_id = "brand-user-python-1"\n${docSnippet('python', 'import jwt')}\nprint(token)`]);
    // And one minted right here with the same stock library.
    const here = jwt.sign({ campaign: 'launch-2026', sub: 'brand-user-0042' }, SECRET, { algorithm: 'HS256', expiresIn: '10m' });

    const page = await newPage(browser, { allow: DOWN });
    let n = 0;
    const show = (attrs) => site.show(page, `vip-${++n}`, brandPage({ src: node.base, widget: `<${WIDGET} campaign="launch-2026" ${attrs}></${WIDGET}>` }));
    for (const [token, sub] of [[here, 'brand-user-0042'], [fromNode, 'brand-user-node-1'], [fromPython, 'brand-user-python-1']]) {
      await show(`token="${token}"`);
      await waitAttr(page, WIDGET, 'data-state', 'live');
      assert.equal((await widgetInfo(page)).viewer, sub);
    }
    await tap(page, 'like', 2);
    await waitPending(page, 0);
    assert.equal((await interactions(node, 'launch-2026')).like, 2);
    // The SDK client behind the widget signs the admitted viewer up.
    assert.deepEqual(await page.$eval(WIDGET, (w) => w.client.register()), { created: true, status: 201 });
    assert.equal((await stats(node, 'launch-2026')).registrations, 1);

    // No token, a token for another campaign, an expired one: the widget explains, no socket.
    await show('');
    await waitAttr(page, WIDGET, 'data-state', 'private');
    assert.equal(await page.locator(`${WIDGET} .state-text`).textContent(), 'Invite needed');
    await show(`token="${jwt.sign({ campaign: 'brand-launch' }, SECRET, { expiresIn: '10m' })}"`);
    await waitAttr(page, WIDGET, 'data-state', 'private');
    await show(`token="${jwt.sign({ campaign: 'launch-2026', exp: Math.floor(Date.now() / 1000) - 5 }, SECRET)}"`);
    await waitAttr(page, WIDGET, 'data-state', 'expired');
    // A forged one gets as far as the node, which refuses every socket (a browser cannot
    // tell why, so the widget keeps trying): nobody is admitted.
    await show(`token="${jwt.sign({ campaign: 'launch-2026', sub: 'brand-user-0042' }, 'a-guessed-secret', { expiresIn: '10m' })}"`);
    await page.waitForFunction(() => document.querySelector('livetally-widget').client);
    await page.$eval(WIDGET, (w) => w.client.on('state', (state) => {
      if (state === 'closed') window.refused = (window.refused || 0) + 1;
    }));
    await page.waitForFunction(() => window.refused >= 2);
    assert.deepEqual(await widgetInfo(page), { state: 'connecting', viewers: 0, pending: 0, viewer: '' });
    await eventually(async () => (await stats(node, 'launch-2026')).viewers === 0, { what: 'no viewer left' });
    await page.context().close();
  });

  it("the guide's SDK example works as written", async () => {
    const token = jwt.sign({ campaign: 'launch-2026', sub: 'brand-user-sdk-1' }, SECRET, { expiresIn: '10m' });
    const example = docSnippet('js', 'sdk/v1/livetally.js').replaceAll('https://live.example.com', node.base);
    const page = await newPage(browser);
    await site.show(page, 'guide', (nonce) => `<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Guide</title></head><body>
<p><span id="viewers">0</span> watching, <span id="badge">?</span></p>
<button id="likeButton">Like</button> <button id="signUp">Sign up</button>
<script type="module" nonce="${nonce}">const token = '${token}';
${example}
window.client = client;</script></body></html>`);
    await waitAttr(page, '#badge', 'data-state', 'open');
    await page.waitForFunction(() => document.getElementById('viewers').textContent === '1');
    const before = (await interactions(node, 'launch-2026')).like;
    for (let i = 0; i < 3; i++) await page.click('#likeButton');
    await page.waitForFunction(() => window.client.pending() === 0);
    assert.equal((await interactions(node, 'launch-2026')).like, before + 3);
    const registrations = (await stats(node, 'launch-2026')).registrations;
    await page.click('#signUp');
    await eventually(async () => (await stats(node, 'launch-2026')).registrations === registrations + 1, { what: 'a sign-up' });
    assert.deepEqual(page.errors, []);
    await page.context().close();
  });

  it('screenshot for docs/embedding.md: default, themed, Chinese', async () => {
    await createCampaign(node, { id: 'shot', title: 'Screenshot', kinds: ['like', 'cheer', 'comment'] });
    const page = await newPage(browser, { viewport: { width: 420, height: 700 }, deviceScaleFactor: 2 });
    await site.show(page, 'shot', brandPage({
      src: node.base,
      head: `<style>body { margin: 0; padding: 20px; background: #eef0f4; font-family: system-ui, sans-serif; }
        h1 { display: none; } .row { display: grid; gap: 16px; }
        .dark { --lt-accent: #ff7a45; --lt-bg: #15161c; --lt-fg: #f4f4f8; --lt-radius: 20px; }</style>`,
      widget: `<div class="row"><${WIDGET} id="a" campaign="shot"></${WIDGET}>
        <${WIDGET} id="b" class="dark" campaign="shot" kinds="like,cheer"></${WIDGET}>
        <${WIDGET} id="c" campaign="shot" lang="zh-CN"></${WIDGET}></div>`,
    }), { csp: false });
    for (const id of ['a', 'b', 'c']) await waitAttr(page, `#${id}`, 'data-state', 'live');
    await tap(page, 'like', 3, '#a');
    await tap(page, 'cheer', 1, '#a');
    await waitPending(page, 0);
    for (const id of ['a', 'b', 'c']) await waitAttr(page, `#${id}`, 'data-viewers', '3');
    await waitCount(page, 'like', '3');
    await page.waitForFunction(() => [...document.querySelectorAll('livetally-widget')]
      .every((w) => !w.shadowRoot.querySelector('.plus') && w.shadowRoot.querySelector('[data-kind="like"]').dataset.count === '3'));
    await page.mouse.move(0, 0); // no hover in the picture
    const shot = { animations: 'disabled' };
    await page.locator('.row').screenshot({ ...shot, path: artifact('widget.png') });
    if (process.env.UPDATE_DOCS_SCREENSHOT) {
      await page.locator('.row').screenshot({ ...shot, path: join(ROOT, 'docs/img/widget.png') });
    }
    await page.context().close();
  });
});
