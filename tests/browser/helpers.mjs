// Shared by the browser tests: start and stop a real livetally node, call its API, and
// drive Debian's chromium through playwright-core (no downloaded browsers).

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const ARTIFACTS = join(ROOT, 'tests/artifacts');

/** The node binary `cargo build` made (scripts/browser-test.sh builds it first). */
export function binaryPath() {
  if (process.env.LIVETALLY_BIN) return process.env.LIVETALLY_BIN;
  const targetDir = process.env.CARGO_TARGET_DIR ? resolve(ROOT, process.env.CARGO_TARGET_DIR) : join(ROOT, 'target');
  const bin = join(targetDir, 'debug/livetally');
  if (!existsSync(bin)) throw new Error(`no node binary at ${bin}: run cargo build (or scripts/browser-test.sh) first`);
  return bin;
}

export function randomToken() {
  return `op-${randomBytes(18).toString('hex')}`;
}

/**
 * Starts a node on `127.0.0.1:<port>` (0: any free port) and resolves once its log says
 * `listening addr=...`. Logs are plain text because stderr is a pipe, not a terminal.
 * Viewers count as unique at once (`--unique-after 0s`, as the Rust harness starts nodes):
 * the pages are under test here, the dwell in tests/limits.rs.
 */
export function startNode({ port = 0, token = randomToken(), tick = '200ms', extra = [] } = {}) {
  const args = ['--listen', `127.0.0.1:${port}`, '--operator-token', token, '--tick', tick,
    '--unique-after', '0s', ...extra];
  const proc = spawn(binaryPath(), args, {
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG || 'info' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const node = { proc, token, port: 0, base: '', log: [], exited: null };
  node.exited = new Promise((res) => proc.once('exit', (code, signal) => res({ code, signal })));
  // Never leave a node behind, even when a test file dies half-way.
  const reap = () => proc.kill('SIGKILL');
  process.once('exit', reap);
  proc.once('exit', () => process.off('exit', reap));
  return new Promise((res, rej) => {
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      rej(new Error(`node did not start within 20 s:\n${node.log.join('\n')}`));
    }, 20_000);
    let buffered = '';
    proc.stderr.setEncoding('utf8');
    proc.stderr.on('data', (chunk) => {
      buffered += chunk;
      let nl;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        node.log.push(line);
        if (node.log.length > 2000) node.log.shift();
        const m = /listening.*addr=127\.0\.0\.1:(\d+)|addr=127\.0\.0\.1:(\d+).*listening/.exec(line);
        if (m && !node.port) {
          node.port = Number(m[1] || m[2]);
          node.base = `http://127.0.0.1:${node.port}`;
          clearTimeout(timer);
          res(node);
        }
      }
    });
    proc.once('exit', (code, signal) => {
      clearTimeout(timer);
      if (!node.port) rej(new Error(`node exited (${code ?? signal}) before listening:\n${node.log.join('\n')}`));
    });
  });
}

/** SIGTERM, then wait for the node to exit (SIGKILL after 15 s). */
export async function stopNode(node) {
  if (!node || node.proc.exitCode !== null || node.proc.signalCode !== null) return;
  node.proc.kill('SIGTERM');
  const killer = setTimeout(() => node.proc.kill('SIGKILL'), 15_000);
  await node.exited;
  clearTimeout(killer);
}

/** The JSON API: `{status, body}`. Operator routes get the node's token unless `token: null`. */
export async function api(node, path, { method = 'GET', body, token = node.token } = {}) {
  const headers = {};
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const r = await fetch(node.base + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await r.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: r.status, body: json, text };
}

export async function createCampaign(node, campaign) {
  const r = await api(node, '/api/v1/campaigns', { method: 'POST', body: campaign });
  if (r.status !== 201) throw new Error(`create ${campaign.id}: ${r.status} ${r.text}`);
  return r.body;
}

/**
 * The campaign's public stats as of a tick after this call: public reads answer from the
 * node's per-tick index, so a count acked a moment ago shows from the next tick (an ended
 * campaign's final stats at once).
 */
export async function stats(node, id) {
  const start = Date.now();
  return eventually(async () => {
    const r = await api(node, `/api/v1/campaigns/${id}`, { token: null });
    if (r.status !== 200) throw new Error(`campaign ${id}: ${r.status} ${r.text}`);
    const fresh = r.body.state === 'ended' || r.body.stats.at >= start;
    return fresh && r.body.stats;
  }, { interval: 50, what: `stats of ${id} from a tick after the call` });
}

/** Polls `fn` until it returns a truthy value (expect-style); the last value is in the error. */
export async function eventually(fn, { timeout = 15_000, interval = 100, what = 'condition' } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last: ${last instanceof Error ? last.message : JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, interval));
  }
}

/** Debian's chromium, headless. Playwright gives every launch a fresh temporary profile. */
export async function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
}

/** A node (`startNode` options) and a browser, for a suite's `before`. */
export async function startNodeAndBrowser(options) {
  const node = await startNode(options);
  return { node, browser: await launchBrowser() };
}

/** Closes the browser, then stops the node: a suite's `after` (either may be missing). */
export async function stopNodeAndBrowser(node, browser) {
  await browser?.close();
  await stopNode(node);
}

/**
 * A new page in its own context (own storage, so its own viewer id), failing the test on
 * any uncaught error. `allow` lists console errors that are expected (e.g. refused sockets
 * while the node restarts).
 */
export async function newPage(browser, { locale = 'en-US', viewport = { width: 1280, height: 800 }, allow = [], ...opts } = {}) {
  const context = await browser.newContext({ locale, viewport, ...opts });
  return watchErrors(await context.newPage(), allow);
}

/** Collects the page's uncaught errors and console errors (less `allow`) in `page.errors`. */
export function watchErrors(page, allow = []) {
  page.errors = [];
  page.on('pageerror', (e) => page.errors.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    const text = m.text();
    if (allow.some((re) => re.test(text))) return;
    page.errors.push(`console: ${text}`);
  });
  return page;
}

/** Waits until `selector` has `attr` equal to `value`; the error says what it had instead. */
export async function waitAttr(page, selector, attr, value, timeout = 15_000) {
  try {
    await page.waitForFunction(
      ([s, a, v]) => { const e = document.querySelector(s); return e && e.getAttribute(a) === v; },
      [selector, attr, String(value)],
      { timeout, polling: 50 },
    );
  } catch (e) {
    const now = await page.evaluate(([s, a]) => { const e = document.querySelector(s); return e ? e.getAttribute(a) : '(no element)'; }, [selector, attr]);
    throw new Error(`${selector} [${attr}] stayed ${JSON.stringify(now)}, wanted ${JSON.stringify(String(value))}`);
  }
}

export function artifact(name) {
  mkdirSync(ARTIFACTS, { recursive: true });
  return join(ARTIFACTS, name);
}

/** Signs the dashboard in and selects `campaign`, waiting for its live socket. */
export async function openDashboard(page, node, campaign) {
  await page.goto(`${node.base}/ops`);
  await page.fill('#token', node.token);
  await page.click('#signin-form button[type="submit"]');
  await page.waitForSelector('#dash:not([hidden])');
  if (campaign) {
    await page.click(`.campaign-item[data-id="${campaign}"]`);
    await waitAttr(page, '#live-state', 'data-state', 'live');
  }
}
