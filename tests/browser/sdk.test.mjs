// The SDK in a real browser, loaded from /sdk/v1/livetally.js by a page of the node's own
// origin (other origins are the widget's tests): interact() resolves on the ack, going
// offline and back resumes the session, and the viewer page counts taps made offline once.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  createCampaign, eventually, newPage, startNodeAndBrowser, stats, stopNodeAndBrowser, waitAttr,
} from './helpers.mjs';

const LIKE = '#reaction-buttons [data-kind="like"]';
/** While offline the browser logs failed sockets and fetches: expected here. */
const OFFLINE = [/WebSocket connection to .* failed/i, /Failed to load resource/i, /ERR_INTERNET_DISCONNECTED/];

describe('SDK in the browser', { timeout: 120_000 }, () => {
  let node;
  let browser;

  before(async () => ({ node, browser } = await startNodeAndBrowser()));

  after(() => stopNodeAndBrowser(node, browser));

  it('resolves interact() on the ack and counts each call once', async () => {
    await createCampaign(node, { id: 'sdk-acks', title: 'SDK acks' });
    const page = await newPage(browser);
    await page.goto(`${node.base}/`);
    const result = await page.evaluate(async () => {
      const { connect } = await import('/sdk/v1/livetally.js');
      const live = connect({ campaign: 'sdk-acks' });
      const states = [];
      live.on('state', (s) => states.push(s));
      await Promise.all([live.interact('like'), live.interact('like', 4), live.interact('cheer', 2)]);
      const pending = live.pending();
      const refused = await live.interact('no such kind').catch((e) => e.code);
      live.close();
      return { states, pending, refused, session: live.session };
    });
    assert.deepEqual(result.states.slice(0, 2), ['connecting', 'open']);
    assert.equal(result.pending, 0, 'every promise resolved after its ack');
    assert.equal(result.refused, 'unknown_kind');
    const s = await stats(node, 'sdk-acks');
    assert.deepEqual(s.interactions, { like: 5, cheer: 2, comment: 0, share: 0 });
    assert.deepEqual(page.errors, []);
    await page.context().close();
  });

  it('offline: the viewer page says so, keeps the taps, and delivers them once back online', async () => {
    await createCampaign(node, { id: 'sdk-offline', title: 'SDK offline' });
    const page = await newPage(browser, { allow: OFFLINE });
    await page.goto(`${node.base}/c/sdk-offline`);
    await waitAttr(page, '#app', 'data-state', 'live');
    await page.click(LIKE);
    await waitAttr(page, '#app', 'data-pending', '0');
    const session = await page.getAttribute('#app', 'data-session');

    await page.context().setOffline(true);
    await waitAttr(page, '#app', 'data-state', 'reconnecting');
    await page.waitForFunction(() => /offline/i.test(document.querySelector('#conn-text').textContent));
    await page.click(LIKE);
    await page.click(LIKE);
    await waitAttr(page, '#app', 'data-pending', '2');
    await waitAttr(page, LIKE, 'data-count', '3');

    await page.context().setOffline(false);
    await waitAttr(page, '#app', 'data-state', 'live');
    await waitAttr(page, '#app', 'data-pending', '0');
    assert.equal(await page.getAttribute('#app', 'data-session'), session, 'the same session resumed');
    await eventually(async () => (await stats(node, 'sdk-offline')).interactions.like === 3, { what: '3 likes' });
    await waitAttr(page, LIKE, 'data-count', '3');
    assert.equal((await stats(node, 'sdk-offline')).viewers, 1, 'one viewer, not two');
    assert.deepEqual(page.errors, []);
    await page.context().close();
  });
});
