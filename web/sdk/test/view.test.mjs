// liveView against fake sockets, fetch and timers: what the viewer page and the widget show.
// Loading with retries, the reasons a viewer cannot join, the states while connected, and
// totals that include the viewer's own taps from the tap to the stats frame that has them.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { formatCompact, formatNumber, liveView } from '../livetally.js';
import { fill, pickLang, text } from '../strings.js';
import { origin, settle, tab } from './fakes.mjs';

const BASE = 'https://live.example.com';
const CAMPAIGN = {
  id: 'launch', title: 'Launch', state: 'live', access: 'public', kinds: ['like'],
  stats: { viewers: 4, peak_viewers: 9, interactions: { like: 10 } },
};

/** A view of `launch` in a fresh tab; `states` records each state it shows. */
async function view(routes, options = {}) {
  const o = origin({ routes });
  const t = tab(o);
  const v = liveView({ base: BASE, campaign: 'launch', env: t, ...options });
  v.states = [];
  v.on('state', (s) => { if (v.states[v.states.length - 1] !== s) v.states.push(s); });
  await settle();
  return { v, o, t };
}

describe('liveView', () => {
  it('retries the campaign while the node is unreachable, then connects and goes live', async () => {
    let up = false;
    const { v, o } = await view({ 'GET /api/v1/campaigns/launch': () => (up ? { status: 200, body: CAMPAIGN } : { status: 503 }) });
    assert.equal(v.state, 'reconnecting');
    assert.equal(o.WebSocket.all.length, 0);
    up = true;
    await o.clock.advance(1000);
    assert.equal(v.campaign.title, 'Launch');
    assert.equal(v.state, 'connecting');
    o.WebSocket.last.welcome({ stats: { viewers: 5, interactions: { like: 10 } } });
    assert.deepEqual(v.states, ['reconnecting', 'connecting', 'live']);
    assert.equal(v.stats.viewers, 5);
    assert.equal(v.total('like'), 10);
  });

  it('says why a viewer cannot join: missing, private, expired, another campaign\'s invite', async () => {
    assert.equal((await view({ 'GET /api/v1/campaigns/launch': { status: 404 } })).v.state, 'missing');
    assert.equal((await view({}, { campaign: 'Not An Id' })).v.state, 'missing');
    const privateOne = { 'GET /api/v1/campaigns/launch': { status: 200, body: { ...CAMPAIGN, access: 'token' } } };
    const none = await view(privateOne);
    assert.deepEqual([none.v.state, none.v.reason], ['private', 'private']);
    assert.equal(none.o.WebSocket.all.length, 0);
    const jwt = (claims) => `e30.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.sig`;
    const expired = await view(privateOne, { token: jwt({ campaign: 'launch', exp: 1 }) });
    assert.deepEqual([expired.v.state, expired.v.reason], ['expired', 'expired']);
    const other = await view(privateOne, { token: jwt({ campaign: 'other', exp: 4e9 }) });
    assert.deepEqual([other.v.state, other.v.reason], ['private', 'wrong_campaign']);
  });

  it('counts a tap at once, keeps it through the ack until a stats frame has it, never dips', async () => {
    const { v, o } = await view({ 'GET /api/v1/campaigns/launch': { status: 200, body: CAMPAIGN } });
    const ws = o.WebSocket.last;
    ws.welcome({ stats: { viewers: 5, interactions: { like: 10 } } });
    const done = v.interact('like', 2);
    await settle();
    assert.equal(v.total('like'), 12, 'pending');
    await o.clock.advance(300);
    ws.ack(1);
    await done;
    assert.equal(v.pending('like'), 0);
    assert.equal(v.total('like'), 12, 'acknowledged, no frame yet');
    ws.receive({ type: 'stats', campaign: 'launch', viewers: 5, interactions: { like: 8 } });
    assert.equal(v.total('like'), 10, 'an older frame does not lower the total');
    ws.receive({ type: 'stats', campaign: 'launch', viewers: 5, interactions: { like: 12 } });
    assert.equal(v.total('like'), 12);
  });

  it('reconnects after a drop and ends with the final totals', async () => {
    const routes = {
      'GET /api/v1/campaigns/launch': { status: 200, body: CAMPAIGN },
      'GET /api/v1/campaigns/launch/stats': { status: 200, body: { viewers: 0, peak_viewers: 9, interactions: { like: 40 } } },
    };
    const { v, o } = await view(routes);
    o.WebSocket.last.welcome();
    o.WebSocket.last.drop(1006);
    await settle();
    assert.equal(v.state, 'reconnecting');
    await o.clock.advance(1000);
    o.WebSocket.last.welcome();
    o.WebSocket.last.drop(4000);
    await settle();
    assert.deepEqual(v.states, ['connecting', 'live', 'reconnecting', 'live', 'ended']);
    assert.equal(v.reason, 'ended');
    assert.equal(v.stats.peak_viewers, 9);
    assert.equal(v.total('like'), 40);
    await assert.rejects(v.interact('like'), { code: 'campaign_ended' });
  });

  it('passes its unit on to the socket and keeps the viewer\'s branch from the unit frame', async () => {
    const { v, o } = await view({ 'GET /api/v1/campaigns/launch': { status: 200, body: CAMPAIGN } }, { unit: 'GD' });
    const ws = o.WebSocket.last;
    assert.equal(ws.url.searchParams.get('unit'), 'GD');
    const heard = [];
    v.on('unit', (f) => heard.push(f.path.map((u) => u.name)));
    ws.welcome();
    assert.equal(v.branch, null);
    ws.receive({ type: 'unit', path: [{ code: 'GD', name: '广东省', viewers: 120345 }] });
    assert.deepEqual(v.branch, [{ code: 'GD', name: '广东省', viewers: 120345 }]);
    assert.deepEqual(heard, [['广东省']]);
    assert.equal(text('zh-CN', 'branch_watching', { name: '广东省', n: formatNumber(120345, 'zh-CN') }), '广东省 · 120,345 人正在观看');
    assert.equal(text('en', 'branch_watching', { name: 'Guangdong', n: formatNumber(120345, 'en') }), 'Guangdong · 120,345 watching');

    // A malformed unit connects nothing: the view says why and stops.
    const bad = await view({ 'GET /api/v1/campaigns/launch': { status: 200, body: CAMPAIGN } }, { unit: 'not a code' });
    assert.equal(bad.v.state, 'closed');
    assert.equal(bad.o.WebSocket.all.length, 0);
  });

  it('stops quietly when the page closes it', async () => {
    const { v, o } = await view({ 'GET /api/v1/campaigns/launch': { status: 200, body: CAMPAIGN } });
    const heard = [];
    v.on('state', (s) => heard.push(s));
    v.close();
    assert.equal(o.WebSocket.last.closedWith.code, 1000);
    o.WebSocket.last.welcome();
    assert.deepEqual(heard, []);
  });
});

describe('strings and numbers', () => {
  it('one table for both languages, with English as the fallback', () => {
    assert.equal(pickLang('zh-Hans-CN'), 'zh-CN');
    assert.equal(pickLang('fr'), 'en');
    assert.equal(text('zh-CN', 'viewers_announce', { n: 3 }), '3 人正在观看');
    assert.equal(text('de', 'state_live'), 'Live');
    assert.equal(fill('{a} and {b}', { a: 1 }), '1 and {b}');
    assert.equal(formatNumber(1234567, 'en'), '1,234,567');
    assert.equal(formatCompact(9999, 'en'), '9,999');
    assert.equal(formatCompact(12345, 'en'), '12.3K');
  });

  it('every language has every key', async () => {
    const { STRINGS } = await import('../strings.js');
    for (const [lang, table] of Object.entries(STRINGS)) {
      assert.deepEqual(Object.keys(table).sort(), Object.keys(STRINGS.en).sort(), lang);
    }
  });
});
