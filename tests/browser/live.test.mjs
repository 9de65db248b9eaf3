// Two viewers and an operator on one node: counts, likes, sign-ups, shares, the report and
// the end of a campaign, with the exact numbers a person would check.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import {
  api, createCampaign, launchBrowser, newPage, openDashboard, startNode, stats, stopNodeAndBrowser, waitAttr,
} from './helpers.mjs';

describe('live campaign: viewers, dashboard and counts', { timeout: 120_000 }, () => {
  let node;
  let browser;
  let ops;
  let a;
  let b;

  before(async () => {
    node = await startNode();
    await createCampaign(node, { id: 'launch', title: 'Launch night', regions: ['CN-BJ', 'US'] });
    browser = await launchBrowser();
    ops = await newPage(browser);
    a = await newPage(browser, { viewport: { width: 360, height: 740 }, isMobile: true, hasTouch: true,
      permissions: ['clipboard-read', 'clipboard-write'] });
    b = await newPage(browser, { viewport: { width: 360, height: 740 }, isMobile: true, hasTouch: true });
  });

  after(() => stopNodeAndBrowser(node, browser));

  it('shows two open viewer pages as 2 viewers on the dashboard, by region and node', async () => {
    await openDashboard(ops, node, 'launch');
    await a.goto(`${node.base}/c/launch?region=CN-BJ`);
    await b.goto(`${node.base}/c/launch?region=US`);
    await waitAttr(a, '#app', 'data-state', 'live');
    await waitAttr(b, '#app', 'data-state', 'live');
    assert.equal(await a.textContent('#title'), 'Launch night');

    await waitAttr(ops, '#m-viewers', 'data-value', '2');
    await waitAttr(ops, '#regions [data-region="CN-BJ"]', 'data-value', '1');
    await waitAttr(ops, '#regions [data-region="US"]', 'data-value', '1');
    await waitAttr(ops, '#nodes tr[data-node]', 'data-value', '2');
    await waitAttr(ops, '#m-unique', 'data-value', '2');
    await waitAttr(a, '#viewer-count', 'data-count', '2');
    await waitAttr(b, '#viewer-count', 'data-count', '2');
    // The chart got live points after its history.
    await ops.waitForFunction(() => Number(document.querySelector('#chart').dataset.last) === 2);
  });

  it('a like on one viewer page raises the dashboard total and the other viewer\'s count', async () => {
    const like = '#reaction-buttons [data-kind="like"]';
    await a.click(like);
    await waitAttr(ops, '#kinds [data-kind="like"]', 'data-value', '1');
    await waitAttr(b, like, 'data-count', '1');
    await waitAttr(a, like, 'data-count', '1');
    await waitAttr(a, '#app', 'data-pending', '0');
    assert.equal((await stats(node, 'launch')).interactions.like, 1);
  });

  it('batches rapid taps into few messages with a count, none lost or doubled', async () => {
    const sent = [];
    // The socket is already open, so its frames are watched through the DevTools protocol.
    const cdp = await a.context().newCDPSession(a);
    await cdp.send('Network.enable');
    cdp.on('Network.webSocketFrameSent', (e) => {
      try {
        const m = JSON.parse(e.response.payloadData);
        if (m.type === 'interact') sent.push(m);
      } catch { /* not ours */ }
    });
    // Ten taps in one burst, as fast as a thumb can't.
    await a.evaluate(() => {
      const button = document.querySelector('#reaction-buttons [data-kind="like"]');
      for (let i = 0; i < 10; i++) button.click();
    });
    await waitAttr(ops, '#kinds [data-kind="like"]', 'data-value', '11');
    await waitAttr(b, '#reaction-buttons [data-kind="like"]', 'data-count', '11');
    await waitAttr(a, '#app', 'data-pending', '0');
    assert.equal((await stats(node, 'launch')).interactions.like, 11);
    assert.equal(sent.reduce((n, m) => n + m.count, 0), 10, JSON.stringify(sent));
    assert.ok(sent.length <= 2, `10 taps went out as ${sent.length} messages`);
    for (let i = 1; i < sent.length; i++) assert.equal(sent[i].seq, sent[i - 1].seq + 1);
    // Interactions per second moved, then decays back to zero once the taps stop.
    await ops.waitForFunction(() => Number(document.querySelector('#m-rate').dataset.value) > 0);
    await waitAttr(ops, '#m-rate', 'data-value', '0', 20_000);

    await b.click('#reaction-buttons [data-kind="cheer"]');
    await waitAttr(ops, '#kinds [data-kind="cheer"]', 'data-value', '1');
    await ops.waitForFunction(() => /\b2\b/.test(document.querySelector('#m-interactors').textContent));
  });

  it('signs a viewer up once: 201 the first time, 200 after', async () => {
    await a.click('#signup');
    await waitAttr(a, '#signup-result', 'data-http', '201');
    assert.equal(await a.getAttribute('#signup-result', 'data-status'), 'new');
    await a.click('#signup');
    await waitAttr(a, '#signup-result', 'data-http', '200');
    assert.equal(await a.getAttribute('#signup-result', 'data-status'), 'again');
    await waitAttr(ops, '#m-registrations', 'data-value', '1');
  });

  it('shares a /s/ link for the chosen channel and counts the visit', async () => {
    await a.selectOption('#share-channel', 'weibo');
    await a.click('#share-button');
    // Desktop-Linux chromium has no share sheet: the link goes to the clipboard.
    await a.waitForFunction(() => document.querySelector('#share-result').textContent !== '');
    const url = await a.evaluate(() => navigator.clipboard.readText());
    assert.equal(url, `${node.base}/s/launch?via=weibo`);
    await waitAttr(ops, '#kinds [data-kind="share"]', 'data-value', '1');
    const visitor = await newPage(browser);
    await visitor.goto(url);
    assert.equal(new URL(visitor.url()).pathname, '/c/launch');
    await waitAttr(ops, '#channels [data-channel="weibo"]', 'data-value', '1');
    await waitAttr(ops, '#m-shares', 'data-value', '1');
    await waitAttr(ops, '#m-viewers', 'data-value', '3');
    await visitor.context().close();
    await waitAttr(ops, '#m-viewers', 'data-value', '2');
  });

  it('downloads the CSV report with the Bearer token', async () => {
    const [download] = await Promise.all([ops.waitForEvent('download'), ops.click('#download')]);
    assert.equal(download.suggestedFilename(), 'livetally-launch-report.csv');
    const csv = await readFile(await download.path(), 'utf8');
    assert.match(csv, /^metric,value$/m);
    assert.match(csv, /^interactions\.like,11$/m);
    assert.match(csv, /^registrations,1$/m);
    assert.match(csv, /^share_visits_by_channel\.weibo,1$/m);
  });

  it('ends the campaign after a confirmation; viewers see that the event has ended', async () => {
    await ops.click('#end');
    await ops.waitForSelector('#confirm-end[open]');
    await ops.click('#confirm-end button[value="cancel"]');
    assert.equal((await api(node, '/api/v1/campaigns/launch', { token: null })).body.state, 'live');

    await ops.click('#end');
    await ops.click('#confirm-end-button');
    await waitAttr(a, '#app', 'data-state', 'ended');
    await waitAttr(b, '#app', 'data-state', 'ended');
    assert.equal(await a.isVisible('#notice'), true);
    assert.match(await a.textContent('#notice-title'), /ended/i);
    assert.equal(await a.isDisabled('#reaction-buttons [data-kind="like"]'), true);
    await waitAttr(ops, '#live-state', 'data-state', 'ended');
    await waitAttr(ops, '.campaign-item[data-id="launch"]', 'data-state', 'ended');
    // Frozen totals are still there for the operator.
    await waitAttr(ops, '#kinds [data-kind="like"]', 'data-value', '11');
    await waitAttr(ops, '#m-peak', 'data-value', '3');

    // A viewer arriving later gets the ended state at once, with no socket retries.
    const late = await newPage(browser);
    await late.goto(`${node.base}/c/launch`);
    await waitAttr(late, '#app', 'data-state', 'ended');
    for (const p of [ops, a, b, late]) assert.deepEqual(p.errors, []);
  });
});
