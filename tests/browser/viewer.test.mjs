// The viewer page on its own: stream embedding, keyboard use, sessions per tab, and pages
// for campaigns that do not exist.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  createCampaign, newPage, startNodeAndBrowser, stats, stopNodeAndBrowser, waitAttr, watchErrors,
} from './helpers.mjs';

/** The streams point nowhere reachable; their load errors are expected. */
const OFFLINE_STREAM = [/Failed to load resource/i, /ERR_NAME_NOT_RESOLVED|ERR_/];

describe('viewer page', { timeout: 120_000 }, () => {
  let node;
  let browser;

  before(async () => ({ node, browser } = await startNodeAndBrowser()));

  after(() => stopNodeAndBrowser(node, browser));

  it('embeds video files in a video element, other stream URLs in an iframe, else a placeholder', async () => {
    await createCampaign(node, { id: 'hls', title: 'HLS', stream_url: 'https://stream.invalid/live/index.m3u8?k=1' });
    await createCampaign(node, { id: 'player', title: 'Player', stream_url: 'https://player.invalid/embed/42' });
    await createCampaign(node, { id: 'none', title: 'Nothing yet' });
    const page = await newPage(browser, { allow: OFFLINE_STREAM });
    await page.goto(`${node.base}/c/hls`);
    await waitAttr(page, '#app', 'data-state', 'live');
    // The video cannot load here, so it either still tries or offers a link out.
    const video = await page.$('#stream video');
    const fallback = await page.$('#stream a[href="https://stream.invalid/live/index.m3u8?k=1"]');
    assert.ok(video || fallback);
    if (video) assert.equal(await video.getAttribute('src'), 'https://stream.invalid/live/index.m3u8?k=1');

    await page.goto(`${node.base}/c/player`);
    await waitAttr(page, '#app', 'data-state', 'live');
    assert.equal(await page.getAttribute('#stream iframe', 'src'), 'https://player.invalid/embed/42');
    assert.equal(await page.getAttribute('#stream iframe', 'title'), 'Live stream');

    await page.goto(`${node.base}/c/none`);
    await waitAttr(page, '#app', 'data-state', 'live');
    assert.equal(await page.isVisible('#stream .stream-placeholder'), true);
    assert.equal(await page.$('#stream video, #stream iframe'), null);
    await page.context().close();
  });

  it('works from the keyboard and announces the count politely', async () => {
    await createCampaign(node, { id: 'keys', title: 'Keyboard', kinds: ['like', 'cheer'] });
    const page = await newPage(browser);
    await page.goto(`${node.base}/c/keys`);
    await waitAttr(page, '#app', 'data-state', 'live');
    assert.equal(await page.getAttribute('#count-announce', 'aria-live'), 'polite');
    await page.waitForFunction(() => document.querySelector('#count-announce').textContent === '1 watching now',
      null, { timeout: 20_000 });
    // Skip link first, then straight to the reactions.
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate(() => document.activeElement.className), 'skip-link');
    await page.keyboard.press('Enter');
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate(() => document.activeElement.dataset.kind), 'like');
    await page.keyboard.press('Enter');
    await page.keyboard.press('Space');
    await page.keyboard.press('Tab');
    await page.keyboard.press('Enter');
    await waitAttr(page, '#app', 'data-pending', '0');
    const s = await stats(node, 'keys');
    assert.deepEqual(s.interactions, { like: 2, cheer: 1 });
    // Every button has an accessible name from its text (the floating +1 is hidden from it).
    await page.getByRole('button', { name: 'Like 2', exact: true }).waitFor();
    await page.getByRole('button', { name: 'Cheer 1', exact: true }).waitFor();
    await page.context().close();
  });

  it('gives each tab its own session, including a duplicated tab that copied sessionStorage', async () => {
    await createCampaign(node, { id: 'tabs', title: 'Tabs' });
    const first = await newPage(browser);
    const context = first.context();
    await first.goto(`${node.base}/c/tabs`);
    await waitAttr(first, '#app', 'data-state', 'live');
    const tab = await first.evaluate(() => sessionStorage.getItem('livetally.tab'));
    const viewer = await first.evaluate(() => localStorage.getItem('livetally.viewer'));

    // "Duplicate tab" copies sessionStorage: simulate it before the page's scripts run.
    const dup = watchErrors(await context.newPage());
    await dup.addInitScript((t) => { if (!sessionStorage.getItem('livetally.tab')) sessionStorage.setItem('livetally.tab', t); }, tab);
    await dup.goto(`${node.base}/c/tabs`);
    await waitAttr(dup, '#app', 'data-state', 'live');
    assert.notEqual(await dup.evaluate(() => sessionStorage.getItem('livetally.tab')), tab);
    assert.notEqual(await dup.getAttribute('#app', 'data-session'), await first.getAttribute('#app', 'data-session'));
    assert.equal(await dup.evaluate(() => localStorage.getItem('livetally.viewer')), viewer, 'one viewer id per browser');

    // Both stay live (no 4001 ping-pong) and both count.
    await first.click('[data-kind="like"]');
    await dup.click('[data-kind="like"]');
    await waitAttr(first, '#app', 'data-pending', '0');
    await waitAttr(dup, '#app', 'data-pending', '0');
    await waitAttr(first, '[data-kind="like"]', 'data-count', '2');
    assert.equal(await first.getAttribute('#app', 'data-state'), 'live');
    assert.equal(await dup.getAttribute('#app', 'data-state'), 'live');
    const s = await stats(node, 'tabs');
    assert.equal(s.viewers, 2);
    assert.equal(s.unique_viewers, 1);
    assert.equal(s.interactions.like, 2);

    // A reload keeps the tab's session.
    const before = await first.getAttribute('#app', 'data-session');
    await first.reload();
    await waitAttr(first, '#app', 'data-state', 'live');
    assert.equal(await first.getAttribute('#app', 'data-session'), before);
    for (const p of [first, dup]) assert.deepEqual(p.errors, []);
    await context.close();
  });

  it('says so when the campaign does not exist', async () => {
    const page = await newPage(browser, { allow: [/status of 404/] });
    await page.goto(`${node.base}/c/no-such-campaign`);
    await waitAttr(page, '#app', 'data-state', 'missing');
    assert.equal(await page.isVisible('#notice'), true);
    assert.match(await page.textContent('#notice-title'), /not found/i);
    assert.equal(await page.isVisible('#reaction-buttons'), false);
    const res = await page.goto(`${node.base}/c/Not_An_Id`);
    assert.equal(res.status(), 404);
    await page.context().close();
  });
});
