// The operator dashboard's own behaviour: sign-in, the create form's server-side validation
// shown next to each field, private campaigns and their join links, and the degraded banner.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  api, createCampaign, newPage, openDashboard, startNodeAndBrowser, stopNodeAndBrowser, waitAttr,
} from './helpers.mjs';

describe('operator dashboard', { timeout: 120_000 }, () => {
  let node;
  let browser;

  before(async () => ({ node, browser } = await startNodeAndBrowser()));

  after(() => stopNodeAndBrowser(node, browser));

  it('refuses a wrong token and keeps the right one for this tab only', async () => {
    const page = await newPage(browser, { allow: [/status of 403/] });
    await page.goto(`${node.base}/ops`);
    await page.fill('#token', 'not-the-operator-token');
    await page.click('#signin-form button[type="submit"]');
    await page.waitForSelector('#signin-error:not([hidden])');
    assert.match(await page.textContent('#signin-error'), /refused/);
    assert.equal(await page.getAttribute('#token', 'aria-invalid'), 'true');

    await page.fill('#token', node.token);
    await page.click('#signin-form button[type="submit"]');
    await waitAttr(page, '#main', 'data-signed-in', 'true');
    // A reload keeps the tab signed in; a new tab starts signed out; nothing in localStorage.
    await page.reload();
    await waitAttr(page, '#main', 'data-signed-in', 'true');
    const other = await page.context().newPage();
    await other.goto(`${node.base}/ops`);
    await other.waitForSelector('#signin:not([hidden])');
    assert.equal(await other.evaluate(() => JSON.stringify(localStorage).includes('op-')), false);
    await page.click('#signout');
    await waitAttr(page, '#main', 'data-signed-in', 'false');
    assert.equal(await page.evaluate(() => sessionStorage.getItem('livetally.opsToken')), null);
    assert.deepEqual(page.errors, []);
    await page.context().close();
  });

  it('watches a campaign live with the operator token in no URL it requests', async () => {
    await createCampaign(node, { id: 'no-token-in-urls', title: 'No token in URLs' });
    const page = await newPage(browser);
    const urls = [];
    page.on('request', (r) => urls.push(r.url()));
    page.on('websocket', (ws) => urls.push(ws.url()));
    await openDashboard(page, node, 'no-token-in-urls');
    // The socket went through a ticket: a reconnect mints another (each is spent once).
    const sockets = urls.filter((u) => u.includes('/ws/v1/campaigns/no-token-in-urls'));
    assert.equal(sockets.length, 1, sockets.join('\n'));
    const query = new URL(sockets[0]).searchParams;
    assert.equal(query.get('role'), 'operator');
    assert.match(query.get('ticket'), /^v1\.\d+\.[\w-]+\.[\w-]+$/);
    assert.ok(urls.some((u) => u.endsWith('/api/v1/campaigns/no-token-in-urls/tickets')));
    const leaking = urls.filter((u) => u.includes(node.token) || /[?&]token=/.test(u));
    assert.deepEqual(leaking, [], 'no URL carries the operator token');
    assert.deepEqual(page.errors, []);
    await page.context().close();
  });

  it('shows the server\'s validation error next to the offending field', async () => {
    const page = await newPage(browser, { allow: [/status of 40[09]/] });
    await openDashboard(page, node);
    const submit = () => page.click('#create button[type="submit"]');

    await page.fill('#f-id', 'Bad ID!');
    await page.fill('#f-title', 'Launch');
    await submit();
    await page.waitForSelector('#f-id-error:not([hidden])');
    assert.match(await page.textContent('#f-id-error'), /id must match/);
    assert.equal(await page.getAttribute('#f-id', 'aria-invalid'), 'true');
    assert.equal(await page.evaluate(() => document.activeElement.id), 'f-id');
    assert.equal(await page.isHidden('#f-title-error'), true);

    await page.fill('#f-id', 'launch');
    await page.fill('#f-title', '   ');
    await submit();
    await page.waitForSelector('#f-title-error:not([hidden])');
    assert.equal(await page.isHidden('#f-id-error'), true, 'the old error is cleared');
    assert.equal(await page.getAttribute('#f-id', 'aria-invalid'), null);
    assert.match(await page.textContent('#f-title-error'), /title must be 1 to 200 characters/);

    await page.fill('#f-title', 'Launch');
    await page.fill('#f-stream_url', 'ftp://example.invalid/live');
    await submit();
    await page.waitForSelector('#f-stream_url-error:not([hidden])');
    assert.match(await page.textContent('#f-stream_url-error'), /stream_url must be an http\(s\) URL/);

    await page.fill('#f-stream_url', '');
    await page.fill('#f-kinds', 'like, Like');
    await submit();
    await page.waitForSelector('#f-kinds-error:not([hidden])');
    assert.match(await page.textContent('#f-kinds-error'), /kind "Like"/);

    await page.fill('#f-kinds', 'like, vote');
    await page.fill('#f-regions', 'CN-BJ, unknown');
    await submit();
    await page.waitForSelector('#f-regions-error:not([hidden])');

    // Valid: created, listed, selected and live.
    await page.fill('#f-regions', 'CN-BJ, CN-SH');
    await submit();
    await page.waitForSelector('.campaign-item[data-id="launch"][aria-current="true"]');
    await waitAttr(page, '#live-state', 'data-state', 'live');
    assert.equal(await page.isHidden('#f-regions-error'), true);
    assert.deepEqual((await api(node, '/api/v1/campaigns/launch', { token: null })).body.kinds, ['like', 'vote']);
    assert.equal(await page.inputValue('#f-id'), '', 'the form is reset');
    assert.deepEqual(
      await page.$$eval('#kinds li', (lis) => lis.map((li) => [li.dataset.kind, li.dataset.value])),
      [['like', '0'], ['vote', '0']],
    );

    // A duplicate id: 409, shown next to the id.
    await page.fill('#f-id', 'launch');
    await page.fill('#f-title', 'Again');
    await submit();
    await page.waitForSelector('#f-id-error:not([hidden])');
    assert.match(await page.textContent('#f-id-error'), /already exists/);
    assert.deepEqual(page.errors, []);
    await page.context().close();
  });

  it('sets webhook milestones on create and edits them on a live campaign', async () => {
    const page = await newPage(browser, { allow: [/status of 400/] });
    await openDashboard(page, node);
    const submit = () => page.click('#create button[type="submit"]');
    await page.fill('#f-id', 'goals');
    await page.fill('#f-title', 'Goals');
    await page.fill('#f-kinds', 'like');
    await page.fill('#f-milestones', 'viewers 1000');
    await submit();
    await page.waitForSelector('#f-milestones-error:not([hidden])');
    assert.match(await page.textContent('#f-milestones-error'), /metric: thresholds/);
    await page.fill('#f-milestones', 'viewers: 1000, 1000000; cheer: 5');
    await submit();
    await page.waitForSelector('#f-milestones-error:not([hidden])');
    assert.match(await page.textContent('#f-milestones-error'), /"cheer" must be viewers, peak_viewers or one of/);
    await page.fill('#f-milestones', 'viewers: 1000, 1000000; like: 100000');
    await submit();
    await page.waitForSelector('.campaign-item[data-id="goals"][aria-current="true"]');
    const read = async () => (await api(node, '/api/v1/campaigns/goals', { token: null })).body.milestones;
    assert.deepEqual(await read(), { viewers: [1000, 1000000], like: [100000] });
    assert.equal(await page.inputValue('#m-milestones'), 'like: 100000; viewers: 1000, 1000000');

    await page.fill('#m-milestones', 'like: 50, 500');
    await page.click('#milestones-form button[type="submit"]');
    await page.waitForFunction(() => document.querySelector('#milestones-result').textContent.includes('saved'));
    assert.deepEqual(await read(), { like: [50, 500] });
    await page.fill('#m-milestones', 'nope: 1');
    await page.click('#milestones-form button[type="submit"]');
    await waitAttr(page, '#m-milestones', 'aria-invalid', 'true');
    assert.match(await page.textContent('#milestones-result'), /"nope"/);
    assert.deepEqual(await read(), { like: [50, 500] });
    assert.deepEqual(page.errors, []);
    await page.context().close();
  });

  it('mints join links for a private campaign; viewers without one are told it is invite-only', async () => {
    await createCampaign(node, { id: 'vip', title: 'VIP preview', access: 'token', kinds: ['like', 'vote'] });
    const ops = await newPage(browser);
    await openDashboard(ops, node, 'vip');
    await ops.click('#mint');
    await ops.waitForSelector('#token-out:not([hidden])');
    const link = await ops.inputValue('#token-url');
    assert.match(link, new RegExp(`^${node.base}/c/vip\\?token=`));

    const guest = await newPage(browser, { viewport: { width: 360, height: 740 } });
    await guest.goto(`${node.base}/c/vip`);
    await waitAttr(guest, '#app', 'data-state', 'private');
    assert.match(await guest.textContent('#notice-title'), /invite-only/);

    const invited = await newPage(browser, { viewport: { width: 360, height: 740 } });
    await invited.goto(link);
    await waitAttr(invited, '#app', 'data-state', 'live');
    // Only the campaign's kinds get buttons; a custom kind gets a generic one.
    assert.deepEqual(await invited.$$eval('#reaction-buttons [data-kind]', (b) => b.map((x) => x.dataset.kind)), ['like', 'vote']);
    assert.equal(await invited.isHidden('#share-panel'), true);
    await invited.click('#reaction-buttons [data-kind="vote"]');
    await waitAttr(ops, '#kinds [data-kind="vote"]', 'data-value', '1');
    await waitAttr(ops, '#m-viewers', 'data-value', '1');

    // An expired invite is recognised without a round of failed sockets.
    const [payload] = new URL(link).searchParams.get('token').split('.');
    const expired = Buffer.from(JSON.stringify({ c: 'vip', exp: 1 })).toString('base64url');
    assert.notEqual(payload, expired);
    const late = await newPage(browser);
    await late.goto(`${node.base}/c/vip?token=${expired}.sig`);
    await waitAttr(late, '#app', 'data-state', 'private');
    assert.equal(await late.getAttribute('#notice', 'data-reason'), 'expired');
    for (const p of [ops, guest, invited, late]) assert.deepEqual(p.errors, []);
    for (const p of [ops, guest, invited, late]) await p.context().close();
  });

  it('shows a banner when /readyz says the store is down or the node is unreachable, and clears it', async () => {
    const page = await newPage(browser, { allow: [/status of 503/, /Failed to load resource/] });
    let mode = 'ok';
    await page.route('**/readyz', (route) => {
      if (mode === 'ok') return route.continue();
      if (mode === 'down') return route.abort('connectionrefused');
      return route.fulfill({ status: 200, contentType: 'application/json',
        body: JSON.stringify({ status: 'store_unavailable', store: 'down', store_kind: 'redis', pending: 1234 }) });
    });
    await openDashboard(page, node);
    await waitAttr(page, '#ready', 'data-ready', 'ready');
    assert.equal(await page.isHidden('#degraded'), true);
    mode = 'degraded';
    await waitAttr(page, '#ready', 'data-ready', 'degraded');
    await page.waitForSelector('#degraded:not([hidden])');
    assert.match(await page.textContent('#degraded'), /1,234 pending/);
    mode = 'down';
    await waitAttr(page, '#ready', 'data-ready', 'down');
    assert.match(await page.textContent('#degraded'), /cannot be reached/);
    mode = 'ok';
    await waitAttr(page, '#ready', 'data-ready', 'ready');
    assert.equal(await page.isHidden('#degraded'), true);
    assert.deepEqual(page.errors, []);
    await page.context().close();
  });
});
