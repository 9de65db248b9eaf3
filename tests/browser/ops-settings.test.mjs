// /ops as an operator sets a deployment up: webhook receivers (a secret that is set and
// never shown) and a campaign's declared share channels, with the operator token in no URL
// the page requests, HTTP or WebSocket.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  api, createCampaign, eventually, newPage, openDashboard, startNodeAndBrowser, stopNodeAndBrowser, waitAttr,
} from './helpers.mjs';

const SECRET = 'whsec-browser-test-0123456789';

describe('operator settings', { timeout: 120_000 }, () => {
  let node;
  let browser;

  before(async () => ({ node, browser } = await startNodeAndBrowser()));

  after(() => stopNodeAndBrowser(node, browser));

  it('adds, edits and removes a webhook receiver, declares share channels, and never puts the token in a URL', async () => {
    await createCampaign(node, { id: 'settings', title: 'Settings' });
    const page = await newPage(browser, { allow: [/status of 400/] });
    // Every URL the page requests, HTTP or WebSocket, and the bodies of its receiver PUTs.
    const urls = [];
    const puts = [];
    page.on('request', (r) => {
      urls.push(r.url());
      if (r.method() === 'PUT' && r.url().endsWith('/api/v1/webhooks')) puts.push(JSON.parse(r.postData()));
    });
    page.on('websocket', (ws) => urls.push(ws.url()));
    await openDashboard(page, node, 'settings');
    await page.waitForFunction(() => document.querySelector('#webhooks-result').textContent.includes('No receivers'));

    // Add one: URL, two types, a secret.
    await page.click('#receiver-add');
    const row = '#receivers li.receiver:nth-child(1)';
    await page.fill(`${row} [name=url]`, 'https://crm.example/hooks/livetally');
    await page.check(`${row} [name=type][value="registration.created"]`);
    await page.check(`${row} [name=type][value="campaign.ended"]`);
    await page.fill(`${row} [name=secret]`, SECRET);
    await page.click('#webhooks-form button[type="submit"]');
    await page.waitForFunction(() => document.querySelector('#webhooks-result').textContent === 'Receivers saved.');
    const stored = (await api(node, '/api/v1/webhooks')).body.receivers;
    assert.equal(stored.length, 1);
    const [added] = stored;
    assert.match(added.id, /^rcv_[0-9a-f]{16}$/);
    assert.deepEqual(added, {
      id: added.id, url: 'https://crm.example/hooks/livetally', types: ['campaign.ended', 'registration.created'],
    });
    // Listed with its secret shown as set, never its value: not in a field, the page or an answer.
    assert.equal(await page.getAttribute(row, 'data-id'), added.id);
    assert.equal(await page.inputValue(`${row} [name=secret]`), '');
    assert.equal(await page.getAttribute(`${row} [name=secret]`, 'placeholder'), 'Set (leave empty to keep it)');
    assert.equal(await page.inputValue(`${row} [name=url]`), 'https://crm.example/hooks/livetally');
    assert.deepEqual(
      await page.$$eval(`${row} [name=type]:checked`, (b) => b.map((x) => x.value)),
      ['campaign.ended', 'registration.created'],
    );
    // A reload lists it from GET /api/v1/webhooks the same way.
    await page.reload();
    await waitAttr(page, row, 'data-id', added.id);
    await waitAttr(page, '#live-state', 'data-state', 'live');
    assert.equal(await page.inputValue(`${row} [name=secret]`), '');
    assert.equal(await page.getAttribute(`${row} [name=secret]`, 'placeholder'), 'Set (leave empty to keep it)');
    assert.equal(await page.inputValue(`${row} [name=url]`), 'https://crm.example/hooks/livetally');
    assert.equal((await page.content()).includes(SECRET), false);
    assert.equal((await api(node, '/api/v1/webhooks')).text.includes(SECRET), false);
    assert.equal(puts.length, 1);
    assert.equal(puts[0].receivers[0].secret, SECRET, 'the secret went in the PUT body');

    // Edit it: a new URL, one type less, the secret left empty (so the stored one stays).
    await page.fill(`${row} [name=url]`, 'https://crm.example/hooks/v2');
    await page.uncheck(`${row} [name=type][value="campaign.ended"]`);
    await page.click('#webhooks-form button[type="submit"]');
    await eventually(() => puts.length === 2, { what: 'the second PUT' });
    await page.waitForFunction(
      () => document.querySelector('#receivers [name=url]').value === 'https://crm.example/hooks/v2'
        && document.querySelector('#webhooks-result').textContent === 'Receivers saved.',
    );
    assert.deepEqual(puts[1], {
      receivers: [{ url: 'https://crm.example/hooks/v2', id: added.id, types: ['registration.created'] }],
    }, 'no secret sent: the stored one is kept');
    assert.deepEqual((await api(node, '/api/v1/webhooks')).body.receivers, [
      { id: added.id, url: 'https://crm.example/hooks/v2', types: ['registration.created'] },
    ]);

    // Remove it.
    await page.click(`${row} button`);
    assert.equal(await page.locator('#receivers li.receiver').count(), 0);
    await page.click('#webhooks-form button[type="submit"]');
    await eventually(() => puts.length === 3, { what: 'the third PUT' });
    await eventually(async () => (await api(node, '/api/v1/webhooks')).body.receivers.length === 0,
      { what: 'no receiver stored' });
    assert.deepEqual(puts[2], { receivers: [] });

    // Share channels: none declared yet; the server's 400s are shown next to the field.
    assert.equal(await page.inputValue('#m-channels'), '');
    assert.match(await page.textContent('#channels-result'), /None declared/);
    const saveChannels = async (text) => {
      await page.fill('#m-channels', text);
      await page.click('#channels-form button[type="submit"]');
    };
    await saveChannels('wechat, WeChat');
    await waitAttr(page, '#m-channels', 'aria-invalid', 'true');
    assert.equal(await page.textContent('#channels-result'),
      'share channel "WeChat" must match ^[a-z0-9_-]{1,32}$ and not be other');
    await saveChannels(Array.from({ length: 65 }, (_, i) => `c${i}`).join(', '));
    await page.waitForFunction(() => document.querySelector('#channels-result').textContent.includes('at most'));
    assert.equal(await page.textContent('#channels-result'), 'at most 64 share channels');
    const read = async () => (await api(node, '/api/v1/campaigns/settings', { token: null })).body.share_channels;
    assert.deepEqual(await read(), [], 'nothing stored by a refused list');

    await saveChannels('wechat, douyin');
    await page.waitForFunction(() => document.querySelector('#channels-result').textContent.startsWith('Share channels saved.'));
    assert.equal(await page.getAttribute('#m-channels', 'aria-invalid'), null);
    assert.equal(await page.inputValue('#m-channels'), 'wechat, douyin');
    assert.match(await page.textContent('#channels-result'), /2 declared/);
    assert.deepEqual(await read(), ['wechat', 'douyin']);

    // Share visits through a declared channel count under its name, any other under other.
    const visit = async (via) => {
      const r = await fetch(`${node.base}/s/settings?via=${via}`, { redirect: 'manual' });
      assert.equal(r.status, 302);
      assert.equal(r.headers.get('location'), '/c/settings');
    };
    await visit('douyin');
    await visit('douyin');
    await visit('made-up');
    await waitAttr(page, '#channels [data-channel="douyin"]', 'data-value', '2');
    await waitAttr(page, '#channels [data-channel="other"]', 'data-value', '1');
    assert.deepEqual(
      await page.$$eval('#channels li', (lis) => lis.map((li) => [li.dataset.channel, li.dataset.value])),
      [['douyin', '2'], ['other', '1']],
    );
    await waitAttr(page, '#m-shares', 'data-value', '3');

    // Each operator socket (one per page load) went through a ticket of its own; no URL
    // the page requested carries the token.
    const sockets = urls.filter((u) => u.startsWith('ws'));
    assert.equal(sockets.length, 2, sockets.join('\n'));
    const tickets = sockets.map((u) => new URL(u).searchParams.get('ticket'));
    for (const ticket of tickets) assert.match(ticket, /^v1\.\d+\.[\w-]+\.[\w-]+$/);
    assert.notEqual(tickets[0], tickets[1]);
    assert.ok(urls.some((u) => u.endsWith('/api/v1/webhooks')));
    assert.ok(urls.some((u) => u.endsWith('/api/v1/campaigns/settings')));
    const leaking = urls.filter((u) => u.includes(node.token) || /[?&]token=/.test(u));
    assert.deepEqual(leaking, [], 'no URL carries the operator token');
    assert.deepEqual(page.errors, []);
    await page.context().close();
  });
});
