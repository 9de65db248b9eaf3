// The client against fake sockets, storage, locks and timers: connecting, acks and promises,
// reconnecting with backoff and resuming, pacing, reloads and tabs, the end of a campaign,
// refusals, going offline, probes and sign-ups.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { backoffDelay, connect } from '../livetally.js';
import { MemoryStorage, origin, settle, tab } from './fakes.mjs';

const BASE = 'https://live.example.com';
const LIVE = { status: 200, body: { id: 'launch', state: 'live', access: 'public' } };

/** A client of campaign `launch` in `t` (a fake tab), with its events recorded. */
async function client(t, options = {}) {
  const c = connect({ base: BASE, campaign: 'launch', env: t, ...options });
  c.log = [];
  c.errors = [];
  c.on('state', (s, info) => c.log.push(info.final ? `${s}!` : s));
  c.on('error', (e) => c.errors.push(e.code));
  await c.ready;
  await settle();
  return c;
}

/** Records how a promise settles. */
function track(p) {
  const r = { state: 'pending' };
  p.then(() => { r.state = 'ok'; }, (e) => { r.state = e.code; });
  return r;
}

/**
 * The server's rate limit (a token bucket of `rate`/s, burst `burst`) replayed over the
 * times messages were sent: how many it would have refused.
 */
function refusedBy(times, rate = 20, burst = 40) {
  let tokens = burst;
  let at = times[0] ?? 0;
  let refused = 0;
  for (const t of times) {
    tokens = Math.min(burst, tokens + ((t - at) / 1000) * rate);
    at = t;
    if (tokens < 1) refused += 1;
    else tokens -= 1;
  }
  return refused;
}

describe('client', () => {
  it('connects with its viewer and session, and resolves interact() on the ack', async () => {
    const o = origin();
    const t = tab(o);
    const c = await client(t, { region: 'EU' });
    const ws = o.WebSocket.last;
    assert.equal(ws.url.origin, 'wss://live.example.com');
    assert.equal(ws.url.pathname, '/ws/v1/campaigns/launch');
    const q = ws.url.searchParams;
    assert.match(q.get('viewer'), /^[A-Za-z0-9_-]{22}$/);
    assert.equal(q.get('viewer'), o.localStorage.getItem('livetally.viewer'));
    assert.equal(q.get('session'), c.session);
    assert.equal(q.get('region'), 'EU');
    assert.equal(q.has('token'), false);
    assert.deepEqual(c.log, ['connecting']);

    ws.welcome();
    assert.equal(c.state, 'open');
    const like = track(c.interact('like'));
    await settle();
    assert.deepEqual(ws.interacts(), [[1, 'like', 1]]);
    assert.equal(like.state, 'pending');
    assert.equal(c.pending(), 1);
    ws.ack(1);
    await settle();
    assert.equal(like.state, 'ok');
    assert.equal(c.pending(), 0);
    assert.deepEqual(JSON.parse(o.localStorage.getItem(`livetally.s.launch.${t.sessionStorage.getItem('livetally.tab')}`)).pending, []);
  });

  it('sends a burst of taps as few messages with a count, numbered one by one', async () => {
    const o = origin();
    const c = await client(tab(o));
    const ws = o.WebSocket.last;
    ws.welcome({ acked: 7 });
    const taps = [];
    for (let i = 0; i < 10; i++) taps.push(track(c.interact('like')));
    taps.push(track(c.interact('cheer', 3)));
    await o.clock.advance(250);
    assert.deepEqual(ws.interacts(), [[8, 'like', 1], [9, 'like', 9], [10, 'cheer', 3]]);
    ws.ack(9);
    await settle();
    assert.deepEqual(taps.map((p) => p.state), [...Array(10).fill('ok'), 'pending']);
    ws.ack(10);
    await settle();
    assert.equal(taps[10].state, 'ok');
  });

  it('reconnects with jitter, resumes the session and resends only what was not counted', async () => {
    const o = origin({ routes: { 'GET /api/v1/campaigns/launch': LIVE } });
    const c = await client(tab(o));
    const first = o.WebSocket.last;
    first.welcome();
    const a = track(c.interact('like'));
    await o.clock.advance(300);
    const b = track(c.interact('like', 2));
    await o.clock.advance(300);
    assert.deepEqual(first.interacts(), [[1, 'like', 1], [2, 'like', 2]]);

    first.drop(1001); // the node shuts down
    await settle();
    assert.equal(c.state, 'closed');
    const [delay] = o.clock.pending();
    assert.ok(delay >= 100 && delay <= 1000, `first retry after ${delay} ms`);
    await o.clock.advance(delay);
    const second = o.WebSocket.last;
    assert.notEqual(second, first);
    assert.equal(second.url.searchParams.get('session'), c.session, 'the same session');
    // The store had seq 1; seq 2 died with the old node.
    second.welcome({ acked: 1 });
    await settle();
    assert.equal(a.state, 'ok');
    assert.equal(b.state, 'pending');
    assert.deepEqual(second.interacts(), [[2, 'like', 2]]);
    second.ack(2);
    await settle();
    assert.equal(b.state, 'ok');
    assert.deepEqual(c.log, ['connecting', 'open', 'closed', 'connecting', 'open']);
  });

  it('asks for protocol 2, and after a welcome with acked_seq null resends only from the ack', async () => {
    const o = origin({ routes: { 'GET /api/v1/campaigns/launch': LIVE } });
    const c = await client(tab(o));
    const first = o.WebSocket.last;
    assert.equal(first.url.searchParams.get('proto'), '2');
    first.welcome();
    const a = track(c.interact('like'));
    const b = track(c.interact('like', 2));
    await o.clock.advance(300);
    assert.deepEqual(first.interacts(), [[1, 'like', 1], [2, 'like', 2]]);
    first.drop(1001);
    await settle();
    await o.clock.advance(o.clock.pending()[0]);
    // The new node cannot reach its store: welcomed, but where to resume is unknown.
    const second = o.WebSocket.last;
    second.welcome({ acked: null });
    const later = track(c.interact('cheer'));
    await o.clock.advance(5000);
    assert.equal(c.state, 'open');
    assert.deepEqual(second.interacts(), [], 'nothing sent before the stored seq is known');
    assert.deepEqual([a.state, b.state, later.state], ['pending', 'pending', 'pending']);
    assert.equal(c.pending(), 4);
    // The claim landed: the store had seq 1.
    second.ack(1);
    await settle();
    assert.equal(a.state, 'ok');
    assert.deepEqual(second.interacts(), [[2, 'like', 2], [3, 'cheer', 1]]);
    second.ack(3);
    await settle();
    assert.deepEqual([b.state, later.state], ['ok', 'ok']);
    assert.equal(c.pending(), 0);
  });

  it('backs off exponentially with jitter while sockets are refused', async () => {
    assert.equal(backoffDelay(0, () => 0), 250);
    assert.equal(backoffDelay(0, () => 1), 500);
    assert.equal(backoffDelay(3, () => 0), 2000);
    assert.equal(backoffDelay(10, () => 1), 20_000, 'capped');
    const o = origin({ routes: { 'GET /api/v1/campaigns/launch': LIVE } });
    o.random = () => 0;
    await client(tab(o));
    const delays = [];
    for (let i = 0; i < 6; i++) {
      o.WebSocket.last.drop(1006); // refused before the upgrade: no welcome
      await settle();
      const [d] = o.clock.pending();
      delays.push(d);
      await o.clock.advance(d);
    }
    assert.deepEqual(delays, [250, 500, 1000, 2000, 4000, 8000]);
    assert.equal(o.WebSocket.all.length, 7);
    // It asked the API why on the first failure and every fourth after, and the socket
    // URL after each (no 429 there: nothing to wait for beyond the backoff).
    assert.equal(o.fetch.calls.filter((c) => c.path.startsWith('/api/')).length, 2);
    assert.equal(o.fetch.calls.filter((c) => c.path === '/ws/v1/campaigns/launch').length, 6);
  });

  it('waits what Retry-After says when its connects are over the node\'s budget', async () => {
    let limited = true;
    const o = origin({
      routes: {
        'GET /api/v1/campaigns/launch': LIVE,
        'GET /ws/v1/campaigns/launch': () => (limited
          ? { status: 429, headers: { 'retry-after': '30' }, body: { error: { code: 'rate_limited' } } }
          : { status: 400, body: { error: { code: 'invalid' } } }),
      },
    });
    o.random = () => 0;
    await client(tab(o));
    o.WebSocket.last.drop(1006); // the upgrade was refused: the browser sees no status
    await settle();
    const probe = o.fetch.calls.find((c) => c.path === '/ws/v1/campaigns/launch');
    assert.match(probe.query, /session=/, 'it asks with the socket\'s own query');
    assert.deepEqual(o.clock.pending(), [30_000], 'not before Retry-After');
    await o.clock.advance(29_999);
    assert.equal(o.WebSocket.all.length, 1);
    await o.clock.advance(1);
    assert.equal(o.WebSocket.all.length, 2);
    // Refused for another reason: the usual backoff.
    limited = false;
    o.WebSocket.last.drop(1006);
    await settle();
    assert.ok(o.clock.pending()[0] < 30_000, `${o.clock.pending()}`);
  });

  it('paces a long backlog within the server\'s rate limit, resends included', async () => {
    const o = origin({ routes: { 'GET /api/v1/campaigns/launch': LIVE } });
    const c = await client(tab(o));
    const first = o.WebSocket.last;
    first.welcome();
    const kinds = Array.from({ length: 60 }, (_, i) => `k${i}`);
    const times = [];
    const sendOf = (ws) => {
      const send = ws.send.bind(ws);
      ws.send = (d) => { times.push(o.clock.now()); send(d); };
    };
    sendOf(first);
    for (const k of kinds) c.interact(k).catch(() => {});
    await o.clock.advance(2000);
    const before = first.interacts().length;
    assert.ok(before >= 30 && before < 60, `${before} sent in 2 s`);
    first.drop(1006);
    await o.clock.advance(1000);
    const second = o.WebSocket.last;
    sendOf(second);
    second.welcome({ acked: 10 });
    await o.clock.advance(5_000);
    assert.equal(second.interacts().length, 50, 'everything not acked goes again');
    assert.deepEqual(second.interacts().map((m) => m[0]), Array.from({ length: 50 }, (_, i) => 11 + i));
    // Each socket's sends stay within 20/s, burst 40 (the server's default), with room.
    const secondTimes = times.slice(before);
    assert.equal(refusedBy(times.slice(0, before)), 0);
    assert.equal(refusedBy(secondTimes), 0);
    assert.equal(refusedBy(secondTimes, 10, 20), 0, 'we keep to half the limit');
  });

  it('keeps unacknowledged taps across a reload and delivers them once from the next page', async () => {
    const o = origin();
    const t = tab(o);
    const page1 = await client(t);
    o.WebSocket.last.welcome();
    page1.interact('like', 3).catch(() => {});
    await settle();
    assert.deepEqual(o.WebSocket.last.interacts(), [[1, 'like', 3]]);
    const session = page1.session;
    page1.close(); // the page unloads before any ack
    await settle();

    const page2 = await client(tab(o, { sessionStorage: t.sessionStorage }));
    assert.equal(page2.session, session, 'a reload resumes the session');
    // A reload whose old page lets go of the lock a moment late still resumes it.
    page2.close();
    let letGo;
    const slot = t.sessionStorage.getItem('livetally.tab');
    o.locks.request(`livetally-tab-launch.${slot}`, { ifAvailable: true }, () => new Promise((r) => { letGo = r; }));
    const page3 = connect({ base: BASE, campaign: 'launch', env: tab(o, { sessionStorage: t.sessionStorage }) });
    await o.clock.advance(200);
    letGo();
    await page3.ready;
    assert.equal(page3.session, session);
    page3.close();
    await settle();
    const page4 = await client(tab(o, { sessionStorage: t.sessionStorage }));
    assert.equal(page2.pending('like'), 3);
    assert.equal(page4.session, session);
    const ws = o.WebSocket.last;
    ws.welcome({ acked: 0 });
    await settle();
    assert.deepEqual(ws.interacts(), [[1, 'like', 3]]);
    ws.ack(1);
    await settle();
    assert.equal(page4.pending(), 0);
  });

  it('gives a duplicated tab its own session, and a new tab the taps a closed one left', async () => {
    const o = origin();
    const t1 = tab(o);
    const first = await client(t1);
    const ws1 = o.WebSocket.last;
    ws1.welcome();

    // "Duplicate tab" copies sessionStorage, so the tab id too; its lock is held (for
    // longer than a reloading page's predecessor would hold it).
    const t2 = tab(o, { sessionStorage: t1.sessionStorage.clone() });
    const dup = connect({ base: BASE, campaign: 'launch', env: t2 });
    await o.clock.advance(499);
    assert.equal(dup.session, '', 'still waiting for the tab\'s ledger');
    await o.clock.advance(1);
    await dup.ready;
    assert.notEqual(dup.session, first.session);
    assert.notEqual(t2.sessionStorage.getItem('livetally.tab'), t1.sessionStorage.getItem('livetally.tab'));
    assert.equal(o.WebSocket.last.url.searchParams.get('viewer'), ws1.url.searchParams.get('viewer'), 'one viewer per browser');

    // Two clients on one page (an SDK and a widget) never share a ledger either.
    const twin = await client(t1);
    assert.notEqual(twin.session, first.session);
    assert.equal(t1.sessionStorage.getItem('livetally.tab'), first.ledger.key.split('.').pop(), 'the tab keeps its id');
    twin.close();

    // The first tab taps, is never acked, and closes: a brand-new tab picks the taps up.
    first.interact('cheer', 2).catch(() => {});
    await settle();
    first.close();
    await settle();
    const fresh = await client(tab(o));
    assert.equal(fresh.session, first.session);
    assert.equal(fresh.pending('cheer'), 2);
    // While a tab is open its ledger is never taken, however old its taps.
    const other = await client(tab(o));
    assert.notEqual(other.session, first.session);
    assert.equal(other.pending(), 0);
  });

  it('rejects what is unacknowledged with campaign_ended when the campaign ends, and forgets it', async () => {
    const o = origin();
    const t = tab(o);
    const c = await client(t);
    const ws = o.WebSocket.last;
    ws.welcome();
    const p = track(c.interact('like'));
    await settle();
    ws.drop(4000);
    await settle();
    assert.equal(p.state, 'campaign_ended');
    assert.equal(c.state, 'ended');
    assert.deepEqual(c.log, ['connecting', 'open', 'ended!']);
    assert.equal([...o.localStorage.map.keys()].filter((k) => k.startsWith('livetally.s.')).length, 0);
    await assert.rejects(c.interact('like'), { code: 'campaign_ended' });
    await o.clock.advance(60_000);
    assert.equal(o.WebSocket.all.length, 1, 'no reconnect');
  });

  it('stops for good when the API says the campaign does not exist or needs a token', async () => {
    const missing = origin({ routes: { 'GET /api/v1/campaigns/launch': { status: 404, body: { error: { code: 'not_found' } } } } });
    const a = await client(tab(missing));
    missing.WebSocket.last.drop(1006);
    await settle();
    assert.deepEqual(a.errors, ['not_found']);
    assert.deepEqual(a.log, ['connecting', 'closed', 'closed!']);
    await missing.clock.advance(60_000);
    assert.equal(missing.WebSocket.all.length, 1);

    const privateCampaign = origin({ routes: { 'GET /api/v1/campaigns/launch': { status: 200, body: { state: 'live', access: 'token' } } } });
    const b = await client(tab(privateCampaign));
    privateCampaign.WebSocket.last.drop(1006);
    await settle();
    assert.deepEqual(b.errors, ['token_required']);

    const ended = origin({ routes: { 'GET /api/v1/campaigns/launch': { status: 200, body: { state: 'ended' } } } });
    const e = await client(tab(ended));
    ended.WebSocket.last.drop(1006);
    await settle();
    assert.equal(e.state, 'ended');
  });

  it('refuses malformed options at once', () => {
    const t = tab(origin());
    const bad = (o) => () => connect({ base: BASE, campaign: 'launch', env: t, ...o });
    assert.throws(bad({ campaign: 'Launch 2026' }), { code: 'bad_campaign' });
    assert.throws(bad({ viewer: 'short' }), { code: 'bad_viewer' });
    assert.throws(bad({ session: 'has spaces in it' }), { code: 'bad_session' });
    assert.throws(bad({ region: 'not/a/region' }), { code: 'bad_region' });
    assert.throws(bad({ unit: 'no spaces' }), { code: 'bad_unit' });
    assert.throws(bad({ unit: 'x'.repeat(33) }), { code: 'bad_unit' });
    assert.throws(bad({ base: 'ftp://live.example.com' }), { code: 'bad_base' });
  });

  it('lets a token with sub name the viewer, and refuses an expired one without a socket', async () => {
    const jwt = (claims) => `e30.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.sig`;
    const o = origin();
    const exp = Math.floor(o.clock.now() / 1000) + 60;
    const c = await client(tab(o), { token: jwt({ campaign: 'launch', exp, sub: 'brand-user-42' }), viewer: 'someone-else' });
    const q = o.WebSocket.last.url.searchParams;
    assert.equal(q.has('viewer'), false);
    assert.equal(q.get('token'), jwt({ campaign: 'launch', exp, sub: 'brand-user-42' }));
    assert.equal(c.viewer, 'brand-user-42');

    const late = await client(tab(o), { token: jwt({ campaign: 'launch', exp: exp - 120 }) });
    assert.deepEqual(late.errors, ['token_expired']);
    const elsewhere = await client(tab(o), { token: jwt({ campaign: 'other', exp }) });
    assert.deepEqual(elsewhere.errors, ['token_invalid']);
    assert.equal(o.WebSocket.all.length, 1);
  });

  it('waits for the network while offline and reconnects as soon as it is back', async () => {
    const o = origin({ routes: { 'GET /api/v1/campaigns/launch': LIVE } });
    const t = tab(o);
    const c = await client(t);
    o.WebSocket.last.welcome();
    t.setOnline(false);
    o.WebSocket.last.drop(1006);
    await o.clock.advance(120_000);
    assert.equal(o.WebSocket.all.length, 1, 'no attempts while offline');
    assert.equal(c.state, 'closed');
    t.setOnline(true);
    await settle();
    assert.equal(o.WebSocket.all.length, 2);
    o.WebSocket.last.welcome();
    assert.equal(c.state, 'open');

    // Going offline with the socket open closes it; taps wait, and go once back online.
    const like = track(c.interact('like'));
    await settle();
    t.setOnline(false);
    await settle();
    assert.ok(o.WebSocket.last.closedWith);
    assert.equal(c.state, 'closed');
    assert.deepEqual(o.WebSocket.last.interacts(), [[1, 'like', 1]], 'sent, never acked');
    await o.clock.advance(60_000);
    assert.equal(o.WebSocket.all.length, 2);
    t.setOnline(true);
    await settle();
    const back = o.WebSocket.last;
    assert.equal(o.WebSocket.all.length, 3);
    assert.equal(back.url.searchParams.get('session'), c.session);
    back.welcome({ acked: 0 });
    await settle();
    assert.deepEqual(back.interacts(), [[1, 'like', 1]]);
    back.ack(1);
    await settle();
    assert.equal(like.state, 'ok');
  });

  it('probes a silent socket that owes acks and replaces it when the probe goes unanswered', async () => {
    const o = origin({ routes: { 'GET /api/v1/campaigns/launch': LIVE } });
    const c = await client(tab(o));
    const ws = o.WebSocket.last;
    ws.welcome();
    c.interact('like', 2).catch(() => {});
    await o.clock.advance(9_000);
    assert.deepEqual(ws.interacts(), [[1, 'like', 2]]);
    // The store is down: no ack, but the node answers the probe (a resend) with the ack it has.
    await o.clock.advance(1_500);
    assert.deepEqual(ws.interacts(), [[1, 'like', 2], [1, 'like', 2]]);
    ws.ack(0);
    await o.clock.advance(10_000);
    assert.equal(o.WebSocket.all.length, 1, 'an answered probe keeps the socket');
    // Now the connection is dead: the next probe is not answered.
    await o.clock.advance(12_000);
    assert.equal(ws.interacts().length, 3);
    assert.ok(ws.closedWith, 'the dead socket is closed');
    await o.clock.advance(1_000);
    assert.equal(o.WebSocket.all.length, 2);
  });

  it('resynchronises through a new socket when the server refuses one of its messages', async () => {
    const o = origin({ routes: { 'GET /api/v1/campaigns/launch': LIVE } });
    const c = await client(tab(o));
    const ws = o.WebSocket.last;
    ws.welcome();
    const vote = track(c.interact('vote'));
    const like = track(c.interact('like'));
    await o.clock.advance(300);
    assert.deepEqual(ws.interacts(), [[1, 'vote', 1], [2, 'like', 1]]);
    ws.receive({ type: 'error', code: 'unknown_kind', message: 'unknown kind', seq: 1 });
    ws.receive({ type: 'error', code: 'seq_gap', message: 'gap', seq: 2 });
    await settle();
    assert.equal(vote.state, 'unknown_kind');
    assert.deepEqual(c.errors, ['unknown_kind']);
    assert.ok(ws.closedWith);
    await o.clock.advance(1_000);
    const next = o.WebSocket.last;
    next.welcome({ acked: 0 });
    await settle();
    assert.deepEqual(next.interacts(), [[1, 'like', 1]]);
    next.ack(1);
    await settle();
    assert.equal(like.state, 'ok');
  });

  it('without Web Locks, a session taken twice by another page moves on with only its unsent taps', async () => {
    const o = origin({ routes: { 'GET /api/v1/campaigns/launch': LIVE }, locks: false });
    const t = tab(o);
    const c = await client(t);
    const ws = o.WebSocket.last;
    ws.welcome();
    c.interact('like').catch(() => {});
    await settle();
    const session = c.session;
    ws.drop(4001);
    await o.clock.advance(2_000);
    assert.equal(c.session, session, 'once is a race with our own previous socket');
    o.WebSocket.last.welcome({ acked: 0 });
    await settle();
    c.interact('cheer').catch(() => {}); // within the batch window: not sent yet
    o.WebSocket.last.drop(4001);
    await o.clock.advance(2_000);
    assert.notEqual(c.session, session);
    assert.equal(o.WebSocket.last.url.searchParams.get('session'), c.session);
    assert.equal(c.pending('like'), 0, 'the sent like belongs to the other page');
    assert.equal(c.pending('cheer'), 1);
  });

  it('registers the viewer with its fields, and with the join token when it has one', async () => {
    const o = origin({
      routes: {
        'POST /api/v1/campaigns/launch/registrations': (u, init) => (JSON.parse(init.body).fields
          ? { status: 201, body: { created: true } }
          : { status: 429, body: { error: { code: 'rate_limited', message: 'slow down' } }, headers: { 'retry-after': '7' } }),
      },
    });
    const c = await client(tab(o));
    assert.deepEqual(await c.register({ phone: '+86 138' }), { created: true, status: 201 });
    await assert.rejects(c.register(), { code: 'rate_limited', status: 429, retryAfter: 7 });
    const [withFields, without] = o.fetch.calls;
    assert.deepEqual(withFields.body, { viewer: c.viewer, fields: { phone: '+86 138' } });
    assert.deepEqual(without.body, { viewer: c.viewer });
    assert.equal(withFields.query, '');

    const token = `e30.${Buffer.from(JSON.stringify({ campaign: 'launch', exp: 4e9 })).toString('base64url')}.sig`;
    const invited = await client(tab(o), { token });
    await invited.register({ phone: '1' });
    assert.equal(o.fetch.calls[2].query, `?token=${token}`);
    const offline = await client(tab(origin()));
    await assert.rejects(offline.register(), { code: 'network', status: 0 });
  });

  it('sends its unit as ?unit= on every socket and with a sign-up, and reports its branch', async () => {
    const o = origin({
      routes: {
        'GET /api/v1/campaigns/launch': LIVE,
        'POST /api/v1/campaigns/launch/registrations': { status: 201, body: { created: true } },
      },
    });
    const c = await client(tab(o), { unit: 'GD-sz_01' });
    const first = o.WebSocket.last;
    assert.equal(first.url.searchParams.get('unit'), 'GD-sz_01');
    const frames = [];
    c.on('unit', (f) => frames.push(f));
    first.welcome();
    assert.equal(c.branch, null);
    const path = [
      { code: 'GD', name: '广东省', viewers: 120345 },
      { code: 'GD-sz', name: '深圳市', viewers: 40210 },
      { code: 'GD-sz_01', name: '南山区', viewers: 9001 },
    ];
    first.receive({ type: 'unit', path });
    assert.deepEqual(frames, [{ type: 'unit', path }]);
    assert.deepEqual(c.branch, path);
    first.receive({ type: 'unit', path: 'not a list' });
    assert.equal(frames.length, 1, 'a malformed frame is ignored');

    first.drop(1001);
    await settle();
    await o.clock.advance(1000);
    const second = o.WebSocket.last;
    assert.notEqual(second, first);
    assert.equal(second.url.searchParams.get('unit'), 'GD-sz_01', 'a reconnect keeps the unit');
    await c.register({ phone: '1' });
    assert.deepEqual(o.fetch.calls.at(-1).body, { viewer: c.viewer, fields: { phone: '1' }, unit: 'GD-sz_01' });

    const plain = await client(tab(o));
    assert.equal(o.WebSocket.last.url.searchParams.has('unit'), false, 'no unit, no query');
    assert.throws(() => plain.watch(null), { code: 'not_an_operator' });
  });

  it('takes the page\'s own ?unit= when given no unit option, and ignores a malformed one', async () => {
    const o = origin();
    const page = (href) => ({ ...tab(o), location: { href } });
    const unitOf = async (href, options = {}) => {
      const c = await client(page(href), options);
      return [c.unit, o.WebSocket.last.url.searchParams.get('unit')];
    };
    assert.deepEqual(await unitOf('https://brand.example/launch?unit=GD-SZ&utm=x'), ['GD-SZ', 'GD-SZ']);
    assert.deepEqual(await unitOf('https://brand.example/launch?unit=GD-SZ', { unit: 'ZJ' }), ['ZJ', 'ZJ'], 'the option wins');
    assert.deepEqual(await unitOf('https://brand.example/launch?unit=GD-SZ', { unit: '' }), ['', null], "'' sends none");
    assert.deepEqual(await unitOf('https://brand.example/launch?unit=%E5%B9%BF%E4%B8%9C'), ['', null], 'not a unit code');
    assert.deepEqual(await unitOf('https://brand.example/launch'), ['', null]);
  });

  it('watches units as an operator: asked once open, again after each reconnect', async () => {
    const o = origin({
      routes: {
        'POST /api/v1/campaigns/launch/tickets': { status: 201, body: { ticket: 'v1.1.nonce.mac', expires_at: 1 } },
        'GET /api/v1/campaigns/launch': LIVE,
      },
    });
    const c = await client(tab(o), { role: 'operator', token: 'op-token-0123456789' });
    const frames = [];
    c.on('units', (f) => frames.push(f));
    c.watch(null); // before the welcome: sent once the socket is open
    const first = o.WebSocket.last;
    assert.deepEqual(first.sent, []);
    first.welcome();
    assert.deepEqual(first.sent, [{ type: 'watch', unit: null }]);
    const body = {
      type: 'units', at: 1, parent: null, next_cursor: null,
      units: [{ code: 'GD', name: '广东省', level: 1, viewers: 3, sessions: 4, interactions: { like: 2 }, registrations: 1, share_visits: 0, peak_viewers: 5 }],
      unassigned: { code: 'unassigned', name: '', level: 1, viewers: 1, sessions: 1, interactions: {}, registrations: 0, share_visits: 0 },
    };
    first.receive(body);
    assert.deepEqual(frames, [body]);
    c.watch('GD');
    assert.deepEqual(first.sent.at(-1), { type: 'watch', unit: 'GD' });
    assert.throws(() => c.watch('广东'), { code: 'bad_unit' });
    assert.throws(() => c.watch(undefined), { code: 'bad_unit' });

    first.drop(1001);
    await settle();
    await o.clock.advance(1000);
    const second = o.WebSocket.last;
    assert.notEqual(second, first);
    second.welcome();
    assert.deepEqual(second.sent, [{ type: 'watch', unit: 'GD' }], 'the new socket is told what was watched');
  });

  it('watches as an operator: never counted, cannot interact, stops on a refused token', async () => {
    const o = origin({
      routes: {
        'POST /api/v1/campaigns/launch/tickets': { status: 201, body: { ticket: 'v1.1.nonce.mac', expires_at: 1 } },
        'GET /api/v1/campaigns/launch': LIVE,
        'GET /api/v1/campaigns': { status: 403, body: { error: { code: 'forbidden' } } },
      },
    });
    const c = await client(tab(o), { role: 'operator', token: 'op-token-0123456789' });
    // The token goes in a header for a single-use ticket, never into the socket's URL.
    assert.equal(o.fetch.calls[0].headers.Authorization, 'Bearer op-token-0123456789');
    const url = o.WebSocket.last.url;
    assert.deepEqual([...url.searchParams.entries()].sort(), [['role', 'operator'], ['ticket', 'v1.1.nonce.mac']]);
    assert.ok(!String(url).includes('op-token'));
    assert.equal(c.viewer, '');
    await assert.rejects(c.interact('like'), { code: 'not_a_viewer' });
    o.WebSocket.last.drop(1006);
    await settle();
    assert.deepEqual(c.errors, ['unauthorized']);
    assert.equal(o.fetch.calls[2].headers.Authorization, 'Bearer op-token-0123456789');
    assert.equal(o.localStorage.length, 0, 'an operator keeps no viewer id and no ledger');
  });

  it('opens no operator socket when the ticket is refused', async () => {
    const refused = { status: 403, body: { error: { code: 'forbidden' } } };
    const o = origin({
      routes: {
        'POST /api/v1/campaigns/launch/tickets': refused,
        'GET /api/v1/campaigns/launch': LIVE,
        'GET /api/v1/campaigns': refused,
      },
    });
    const c = await client(tab(o), { role: 'operator', token: 'wrong-token-0123456789' });
    await settle();
    assert.equal(o.WebSocket.last, undefined);
    assert.deepEqual(c.errors, ['unauthorized']);
  });
});
