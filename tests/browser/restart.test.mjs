// A node that restarts (or freezes) under a viewer: the page says it is reconnecting, comes
// back live on its own, and every like is counted exactly once: none lost, none doubled.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  createCampaign, eventually, launchBrowser, newPage, openDashboard, startNode, stats, stopNode, stopNodeAndBrowser, waitAttr,
} from './helpers.mjs';

/** While the node is away the browser logs failed sockets and 404s: expected here. */
const DOWN = [/WebSocket connection to .* failed/i, /Failed to load resource/i];
const LIKE = '#reaction-buttons [data-kind="like"]';

async function likes(node, id) {
  return (await stats(node, id)).interactions.like;
}

/** Ledgers (unacknowledged interactions) the page keeps in localStorage for `id`. */
function pendingInStorage(page, id) {
  return page.evaluate((prefix) => Object.keys(localStorage)
    .filter((k) => k.startsWith(prefix))
    .reduce((n, k) => n + JSON.parse(localStorage.getItem(k)).pending.reduce((m, p) => m + p[2], 0), 0),
  `livetally.s.${id}.`);
}

describe('reconnects', { timeout: 180_000 }, () => {
  let node;
  let browser;

  before(async () => {
    browser = await launchBrowser();
  });

  after(() => stopNodeAndBrowser(node, browser));

  it('node restarted on the same port: reconnecting, then live; likes neither lost nor doubled', async () => {
    node = await startNode();
    const { port, token } = node;
    const campaign = { id: 'relay', title: 'Relay race', regions: ['EU'] };
    await createCampaign(node, campaign);
    const page = await newPage(browser, { viewport: { width: 360, height: 740 }, allow: DOWN });
    const ops = await newPage(browser, { allow: DOWN });
    await openDashboard(ops, node, 'relay');
    await page.goto(`${node.base}/c/relay?region=EU`);
    await waitAttr(page, '#app', 'data-state', 'live');
    await waitAttr(ops, '#m-viewers', 'data-value', '1');

    for (let i = 0; i < 3; i++) await page.click(LIKE);
    await waitAttr(page, '#app', 'data-pending', '0');
    assert.equal(await likes(node, 'relay'), 3);
    const session = await page.getAttribute('#app', 'data-session');

    await stopNode(node); // SIGTERM: the node closes every socket with 1001 and exits
    await waitAttr(page, '#app', 'data-state', 'reconnecting');
    await waitAttr(page, '#conn', 'data-state', 'reconnecting');
    await waitAttr(ops, '#live-state', 'data-state', 'reconnecting');

    // Taps while the node is away wait in the ledger, persisted with the session.
    await page.click(LIKE);
    await page.click(LIKE);
    await waitAttr(page, '#app', 'data-pending', '2');
    assert.equal(await pendingInStorage(page, 'relay'), 2);
    await waitAttr(page, LIKE, 'data-count', '5');

    node = await startNode({ port, token });
    assert.equal(node.port, port);
    // The memory store forgot the campaign with the old process: recreate it.
    await createCampaign(node, campaign);
    await waitAttr(page, '#app', 'data-state', 'live', 40_000);
    assert.equal(await page.getAttribute('#app', 'data-session'), session, 'the same session resumed');
    await waitAttr(page, '#app', 'data-pending', '0');
    // The 2 taps made offline arrive once; the 3 acknowledged before the restart are not resent.
    assert.equal(await likes(node, 'relay'), 2);

    for (let i = 0; i < 4; i++) await page.click(LIKE);
    await waitAttr(page, '#app', 'data-pending', '0');
    assert.equal(await likes(node, 'relay'), 6);
    await waitAttr(page, LIKE, 'data-count', '6');
    assert.equal(await pendingInStorage(page, 'relay'), 0);

    // The dashboard found its way back too.
    await waitAttr(ops, '#live-state', 'data-state', 'live', 40_000);
    await waitAttr(ops, '#m-viewers', 'data-value', '1');
    await waitAttr(ops, '#kinds [data-kind="like"]', 'data-value', '6');
    assert.deepEqual(page.errors, []);
    assert.deepEqual(ops.errors, []);
    await page.context().close();
    await ops.context().close();
  });

  it('taps sent to a frozen node survive closing the tab and count once from the next tab', async () => {
    const campaign = { id: 'frozen', title: 'Frozen node' };
    await createCampaign(node, campaign);
    const page = await newPage(browser, { allow: DOWN });
    const context = page.context();
    await page.goto(`${node.base}/c/frozen`);
    await waitAttr(page, '#app', 'data-state', 'live');
    await page.click(LIKE);
    await waitAttr(page, '#app', 'data-pending', '0');
    assert.equal(await likes(node, 'frozen'), 1);
    // A second page of the same origin, to watch the tab locks.
    const watcher = await context.newPage();
    await watcher.goto(`${node.base}/`);

    node.proc.kill('SIGSTOP'); // the socket stays open, but nothing is acknowledged
    try {
      for (let i = 0; i < 3; i++) await page.click(LIKE);
      await waitAttr(page, '#app', 'data-pending', '3');
      assert.equal(await pendingInStorage(page, 'frozen'), 3);
      await page.close();
      await watcher.waitForFunction(async () => {
        const { held } = await navigator.locks.query();
        return !held.some((l) => l.name.startsWith('livetally-tab-'));
      });
    } finally {
      node.proc.kill('SIGCONT');
    }
    // The frozen node now reads the old socket's frames and its close, and may or may not
    // flush them before the new tab claims the session: either way each tap counts once.
    const next = await context.newPage();
    await next.goto(`${node.base}/c/frozen`);
    await waitAttr(next, '#app', 'data-state', 'live');
    await waitAttr(next, '#app', 'data-pending', '0');
    await eventually(async () => (await likes(node, 'frozen')) === 4, { what: '4 likes' });
    await waitAttr(next, LIKE, 'data-count', '4');
    assert.equal(await likes(node, 'frozen'), 4);
    await context.close();
  });
});
