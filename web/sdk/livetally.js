// livetally SDK: a live campaign's counts and reactions from any page.
//
//   import { connect } from 'https://live.example.com/sdk/v1/livetally.js';
//   const live = connect({ base: 'https://live.example.com', campaign: 'launch-2026' });
//   live.on('stats', (s) => { count.textContent = s.viewers; });
//   button.onclick = () => live.interact('like');
//
// It owns the browser side of the viewer socket (docs/protocol.md): the welcome, a jittered
// reconnect that resumes the session, seq/ack, and a ledger of unacknowledged interactions
// kept in localStorage, so a tap is counted exactly once across reconnects, reloads and
// tabs. One ES module with no dependencies and no build step; everything it touches in the
// browser (WebSocket, storage, Web Locks, timers, fetch) can be injected through `env`, which
// is how its unit tests run under Node.

export const VERSION = '1.1.0';

// BEGIN GENERATED from src/protocol/ by src/protocol/table.rs: do not edit.
// Regenerate: LIVETALLY_BLESS=1 cargo nextest run --lib protocol::table
/** The server's patterns: viewer and session ids, campaign ids, kinds, regions, unit codes. */
const CLIENT_ID = /^[A-Za-z0-9_-]{8,64}$/;
const CAMPAIGN_ID = /^[a-z0-9][a-z0-9-]{0,62}$/;
const KIND = /^[a-z][a-z0-9_]{0,31}$/;
const REGION = /^[A-Za-z0-9-]{1,16}$/;
const UNIT_CODE = /^[A-Za-z0-9_-]{1,32}$/;
/** The server's largest `count` per message. */
export const MAX_COUNT = 100;
/** Close codes (docs/protocol.md). */
const CLOSE = Object.freeze({
  NORMAL: 1000,
  GOING_AWAY: 1001,
  POLICY: 1008,
  TOO_BIG: 1009,
  ENDED: 4000,
  RESUMED_ELSEWHERE: 4001,
});
/** The `code`s of the socket's `error` message. */
const SOCKET_ERROR = Object.freeze({
  BAD_JSON: 'bad_json',
  UNKNOWN_TYPE: 'unknown_type',
  UNKNOWN_KIND: 'unknown_kind',
  BAD_COUNT: 'bad_count',
  BAD_SEQ: 'bad_seq',
  SEQ_GAP: 'seq_gap',
  RATE_LIMITED: 'rate_limited',
  STORE_UNAVAILABLE: 'store_unavailable',
  NOT_A_VIEWER: 'not_a_viewer',
  UNKNOWN_UNIT: 'unknown_unit',
});
/** The HTTP API's error codes: their status, and the code a LivetallyError reports. */
const API_ERRORS = Object.freeze([
  { code: 'invalid', status: 400, sdk: 'invalid' },
  { code: 'unauthorized', status: 401, sdk: 'unauthorized' },
  { code: 'forbidden', status: 403, sdk: 'forbidden' },
  { code: 'not_found', status: 404, sdk: 'not_found' },
  { code: 'conflict', status: 409, sdk: 'conflict' },
  { code: 'ended', status: 410, sdk: 'campaign_ended' },
  { code: 'rate_limited', status: 429, sdk: 'rate_limited' },
  { code: 'too_many_connections', status: 429, sdk: 'too_many_connections' },
  { code: 'unavailable', status: 503, sdk: 'unavailable' },
]);
// END GENERATED
/** Taps within this window go out as one message with a `count`. */
const BATCH_MS = 250;
/**
 * Messages per second we allow ourselves: half the server's default (20/s, burst 40), so
 * resends after a reconnect and the odd probe never meet its limit. Resends count against
 * it like any message.
 */
const SEND_RATE = 10;
const SEND_BURST = 20;
/**
 * Nothing heard for this long while acks are awaited: probe the socket by resending the
 * last message (a resend is never counted twice and is answered at once with the current
 * ack). Browsers cannot send WebSocket pings, and the protocol has no ping message.
 */
const PROBE_AFTER_MS = 10_000;
/** A probe unanswered this long means the socket is dead (a half-open TCP connection). */
const PROBE_TIMEOUT_MS = 10_000;
/**
 * How long a page waits for its tab's ledger before deciding another tab holds it (a
 * duplicated tab): a reloaded page's predecessor may hold its lock a moment longer.
 */
const RELOAD_WAIT_MS = 500;
/** Two "resumed elsewhere" closes within this window: somebody else holds our session. */
const RESUMED_WINDOW_MS = 30_000;
/** A ledger nobody touched for this long belongs to a tab that is gone for good. */
const LEDGER_MAX_AGE_MS = 7 * 24 * 3600 * 1000;
/** An empty ledger is kept this long, so a reload within it resumes its session. */
const EMPTY_LEDGER_AGE_MS = 24 * 3600 * 1000;

const VIEWER_KEY = 'livetally.viewer';
const TAB_KEY = 'livetally.tab';
const LEDGER_PREFIX = 'livetally.s.';
const LOCK_PREFIX = 'livetally-tab-';

/** An error with the `code` a program branches on (`campaign_ended`, `not_found`, ...). */
export class LivetallyError extends Error {
  constructor(code, message, extra = {}) {
    super(message || code);
    this.name = 'LivetallyError';
    this.code = code;
    Object.assign(this, extra);
  }
}

/**
 * The code a LivetallyError reports for an HTTP error: the API's `code` as the SDK names it
 * (`ended` is `campaign_ended`). A body without a known code (a proxy's page) is named by
 * its status when the SDK renames that status's code, else by the code or the status.
 */
function apiErrorCode(status, code) {
  const known = API_ERRORS.find((e) => e.code === code)
    || API_ERRORS.find((e) => e.status === status && e.sdk !== e.code);
  return known ? known.sdk : code || String(status);
}

/**
 * Delay before reconnect attempt `attempt` (0-based): exponential from `base`, capped at
 * `cap`, with "equal jitter" (half fixed, half random) so a node restart does not bring every
 * viewer back in the same millisecond, yet nobody retries in a tight loop.
 */
export function backoffDelay(attempt, random = Math.random, base = 500, cap = 20_000) {
  const d = Math.min(cap, base * 2 ** Math.min(attempt, 16));
  return d / 2 + random() * (d / 2);
}

/** A URL-safe random id (`^[A-Za-z0-9_-]+$`) of `bytes` bytes of entropy. */
export function randomId(bytes = 16, env = defaultEnv()) {
  const b = new Uint8Array(bytes);
  env.crypto.getRandomValues(b);
  return btoa(String.fromCharCode(...b)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/** The claims of a JWT (or of a v1 token, `payload.signature`), or null when unreadable. */
export function tokenClaims(token) {
  if (typeof token !== 'string' || !token) return null;
  const parts = token.split('.');
  const payload = parts.length === 3 ? parts[1] : parts.length === 2 ? parts[0] : null;
  if (!payload) return null;
  try {
    const b64 = payload.replace(/-/g, '+').replace(/_/g, '/');
    const bytes = Uint8Array.from(atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4)), (c) => c.charCodeAt(0));
    const claims = JSON.parse(new TextDecoder().decode(bytes));
    return claims && typeof claims === 'object' && !Array.isArray(claims) ? claims : null;
  } catch {
    return null;
  }
}

/** What is wrong with a join token for `campaign` at `nowMs`, judged from its claims alone. */
function tokenProblem(token, campaign, nowMs) {
  const claims = tokenClaims(token);
  if (!claims) return 'token_invalid';
  const forCampaign = claims.campaign ?? claims.c;
  if (forCampaign !== undefined && forCampaign !== campaign) return 'token_invalid';
  if (Number.isFinite(claims.exp) && claims.exp * 1000 <= nowMs) return 'token_expired';
  return '';
}

// ---------------------------------------------------------------------------------------
// Storage that never throws: private modes and full quotas fall back to memory.

function safeStorage(real) {
  const memory = new Map();
  const tryReal = (f, fallback) => {
    if (!real) return fallback();
    try { return f(); } catch { return fallback(); }
  };
  return {
    get: (key) => tryReal(() => real.getItem(key), () => (memory.has(key) ? memory.get(key) : null)),
    set: (key, value) => tryReal(() => real.setItem(key, String(value)), () => memory.set(key, String(value))),
    remove: (key) => { memory.delete(key); tryReal(() => real.removeItem(key), () => {}); },
    keys: () => tryReal(() => {
      const out = [];
      for (let i = 0; i < real.length; i++) out.push(real.key(i));
      return out;
    }, () => [...memory.keys()]),
    getJSON(key) {
      const raw = this.get(key);
      if (raw == null) return null;
      try { return JSON.parse(raw); } catch { return null; }
    },
    setJSON(key, value) { this.set(key, JSON.stringify(value)); },
  };
}

/**
 * The page's `localStorage` or `sessionStorage` (`area`) as storage that never throws:
 * `get`, `set`, `remove`, `keys`, `getJSON`, `setJSON`, in memory for the page where the
 * browser refuses the real one (private modes, disabled storage, a full quota).
 */
export function pageStorage(area) {
  return safeStorage(probeStorage(area));
}

function probeStorage(area) {
  try {
    const s = globalThis[area];
    s.setItem('__livetally_probe__', '1');
    s.removeItem('__livetally_probe__');
    return s;
  } catch {
    return null;
  }
}

/** What the SDK uses of the browser; `connect({env})` overrides any of it. */
function defaultEnv() {
  const g = globalThis;
  return {
    WebSocket: g.WebSocket,
    fetch: g.fetch ? g.fetch.bind(g) : undefined,
    localStorage: probeStorage('localStorage'),
    sessionStorage: probeStorage('sessionStorage'),
    locks: g.navigator && g.navigator.locks,
    crypto: g.crypto,
    setTimeout: g.setTimeout.bind(g),
    clearTimeout: g.clearTimeout.bind(g),
    now: () => Date.now(),
    random: Math.random,
    onLine: () => !(g.navigator && g.navigator.onLine === false),
    window: typeof g.addEventListener === 'function' ? g : null,
    document: g.document || null,
    location: g.location || null,
  };
}

// ---------------------------------------------------------------------------------------
// The ledger.

/**
 * A session's interactions that the server has not acknowledged yet, persisted in
 * `store` under `key` on every change: `{session, acked, pending: [[seq, kind, count]], t}`.
 * `sent` is the highest seq written to the current socket. Waiters (the promises of
 * `interact()`) live in memory only, on the entry that carries their last tap.
 */
export class Ledger {
  constructor(store, key, { now = () => Date.now(), newSession }) {
    this.store = store;
    this.key = key;
    this.now = now;
    const saved = store.getJSON(key) || {};
    this.session = CLIENT_ID.test(saved.session || '') ? saved.session : newSession();
    this.acked = Number.isSafeInteger(saved.acked) && saved.acked >= 0 ? saved.acked : 0;
    let seq = this.acked;
    this.pending = [];
    for (const m of Array.isArray(saved.pending) ? saved.pending : []) {
      if (!Array.isArray(m) || !Number.isSafeInteger(m[0]) || m[0] <= seq || !KIND.test(m[1])
        || !Number.isInteger(m[2]) || m[2] < 1 || m[2] > MAX_COUNT) continue;
      seq = m[0];
      this.pending.push({ seq, kind: m[1], count: m[2], waiters: [] });
    }
    this.sent = this.acked;
    this.closed = false;
    this.save();
  }

  nextSeq() {
    return this.pending.length ? this.pending[this.pending.length - 1].seq + 1 : this.acked + 1;
  }

  /**
   * `count` taps of `kind`: joins the last message while it is unsent, of the same kind and
   * not full, else starts new ones. `waiter` waits for the last message they went into.
   */
  add(kind, count, waiter) {
    let left = count;
    let last = this.pending[this.pending.length - 1];
    while (left > 0) {
      if (!(last && last.seq > this.sent && last.kind === kind && last.count < MAX_COUNT)) {
        last = { seq: this.nextSeq(), kind, count: 0, waiters: [] };
        this.pending.push(last);
      }
      const n = Math.min(left, MAX_COUNT - last.count);
      last.count += n;
      left -= n;
    }
    if (waiter) last.waiters.push(waiter);
    this.save();
  }

  /** A cumulative ack: `{settled: {kind: n}, waiters}` for what it settled. */
  ack(seq) {
    const { settled, waiters } = this.ackUpTo(seq);
    if (seq > this.acked) this.acked = seq;
    if (seq > this.sent) this.sent = seq;
    this.save();
    return { settled, waiters };
  }

  /**
   * After a welcome: everything up to `acked` is counted (its waiters are returned to be
   * resolved); everything after is not (a new socket fences the old one's unflushed
   * counts), so it is merged by kind into as few messages as possible and renumbered from
   * `acked + 1`. This also heals a server that forgot the session (acked lower than ours):
   * nothing pending was counted there either.
   */
  rebase(acked) {
    const { settled, waiters } = this.ackUpTo(acked);
    const byKind = new Map();
    for (const m of this.pending) {
      const k = byKind.get(m.kind) || { total: 0, waiters: [] };
      k.total += m.count;
      k.waiters.push(...m.waiters);
      byKind.set(m.kind, k);
    }
    this.pending = [];
    let seq = acked;
    for (const [kind, k] of byKind) {
      for (let left = k.total; left > 0; left -= MAX_COUNT) {
        this.pending.push({ seq: ++seq, kind, count: Math.min(left, MAX_COUNT), waiters: [] });
      }
      this.pending[this.pending.length - 1].waiters = k.waiters;
    }
    this.acked = acked;
    this.sent = acked;
    this.save();
    return { settled, waiters };
  }

  /** Takes every message up to `seq` out: what they settled, by kind, and their waiters. */
  ackUpTo(seq) {
    const settled = {};
    const waiters = [];
    this.pending = this.pending.filter((m) => {
      if (m.seq > seq) return true;
      settled[m.kind] = (settled[m.kind] || 0) + m.count;
      waiters.push(...m.waiters);
      return false;
    });
    return { settled, waiters };
  }

  /** Drops the message `seq` the server refused for good (bad kind or count). */
  drop(seq) {
    const i = this.pending.findIndex((m) => m.seq === seq);
    if (i < 0) return [];
    const [m] = this.pending.splice(i, 1);
    this.save();
    return m.waiters;
  }

  unsent() {
    return this.pending.filter((m) => m.seq > this.sent);
  }

  /** Taps not yet acknowledged, of `kind` or of every kind. */
  count(kind) {
    let n = 0;
    for (const m of this.pending) if (kind === undefined || m.kind === kind) n += m.count;
    return n;
  }

  /** Every waiter, for a campaign that ended or a client that closed. */
  allWaiters() {
    return this.pending.flatMap((m) => m.waiters.splice(0));
  }

  /** The campaign is over: nothing pending can be counted any more. */
  clear() {
    this.pending = [];
    this.closed = true;
    this.store.remove(this.key);
  }

  save() {
    if (this.closed) return;
    this.store.set(this.key, JSON.stringify({
      session: this.session,
      acked: this.acked,
      pending: this.pending.map((m) => [m.seq, m.kind, m.count]),
      t: this.now(),
    }));
  }
}

// ---------------------------------------------------------------------------------------
// Claiming a ledger: one tab, one session, held with a Web Lock for the page's life.

/**
 * Holds the Web Lock `name` until `release()`; resolves to the release function, or null
 * when another page (or another client in this one) holds it, after waiting up to `waitMs`
 * for it. Without Web Locks every claim succeeds (a shared session is then caught by its
 * 4001 closes).
 */
function holdLock(env, name, waitMs = 0) {
  if (!env.locks) return Promise.resolve(() => {});
  return new Promise((resolve) => {
    let release;
    const held = new Promise((r) => { release = r; });
    let options = { ifAvailable: true };
    let timer = null;
    if (waitMs > 0) {
      const abort = new AbortController();
      timer = env.setTimeout(() => abort.abort(), waitMs);
      options = { signal: abort.signal };
    }
    env.locks.request(name, options, (lock) => {
      if (timer !== null) env.clearTimeout(timer);
      if (!lock) { resolve(null); return undefined; }
      resolve(release);
      return held;
    }).catch((e) => resolve(e && e.name === 'AbortError' ? null : () => {}));
  });
}

/**
 * The ledger this client continues: the tab's own (sessionStorage keeps its id, so a
 * reload resumes the session), else one a closed tab left with unacknowledged taps (so they
 * are delivered too), else a new one. A duplicated tab copies sessionStorage: it finds the id
 * locked and takes a new one, so two tabs never share a session.
 */
async function claimLedger(env, local, tabs, campaign, fixedSession) {
  const prefix = `${LEDGER_PREFIX}${campaign}.`;
  const heldHere = heldIn(env);
  /** The ledger `slot` with its lock, or null when held elsewhere. Marked as held here at
   * once, so a second client of this page starting at the same time sees it taken. */
  const claim = async (slot, waitMs = 0) => {
    const name = `${campaign}.${slot}`;
    if (heldHere.has(name)) return null;
    heldHere.add(name);
    const release = await holdLock(env, LOCK_PREFIX + name, waitMs);
    if (!release) { heldHere.delete(name); return null; }
    const ledger = new Ledger(local, prefix + slot, { now: env.now, newSession: () => fixedSession || randomId(16, env) });
    return { ledger, release: () => { heldHere.delete(name); release(); } };
  };
  if (fixedSession) {
    // The page manages its sessions: the ledger is the session's.
    const held = await claim(fixedSession);
    if (!held) throw new LivetallyError('session_in_use', 'another client holds this session');
    return held;
  }
  const mine = tabs.get(TAB_KEY);
  const valid = Boolean(mine) && CLIENT_ID.test(mine);
  // Another client of this page holds the tab's ledger: the tab keeps its id for it.
  const sameTab = valid && heldHere.has(`${campaign}.${mine}`);
  if (valid && !sameTab) {
    // Just reloaded, the old page may still be letting go of it.
    const held = await claim(mine, RELOAD_WAIT_MS);
    if (held) return held;
  }
  const now = env.now();
  for (const key of local.keys()) {
    if (!key.startsWith(prefix)) continue;
    const saved = local.getJSON(key);
    const age = now - ((saved && saved.t) || 0);
    const empty = !saved || !Array.isArray(saved.pending) || saved.pending.length === 0;
    if (age > LEDGER_MAX_AGE_MS || (empty && age > EMPTY_LEDGER_AGE_MS)) {
      local.remove(key);
      continue;
    }
    // Without Web Locks nothing tells a closed tab's ledger from an open one's.
    const other = key.slice(prefix.length);
    if (empty || !env.locks || !CLIENT_ID.test(other)) continue;
    const held = await claim(other);
    if (!held) continue;
    if (!sameTab) tabs.set(TAB_KEY, other);
    return held;
  }
  // A ledger of our own; it becomes the tab's (no id yet, or a duplicated tab's copy), so
  // a reload resumes it.
  for (;;) {
    const slot = randomId(12, env);
    const held = await claim(slot);
    if (!held) continue; // taken: only with an astronomically unlikely id clash
    if (!sameTab) tabs.set(TAB_KEY, slot);
    return held;
  }
}

/**
 * Ledgers held by clients of this page (`campaign.slot`), by page: a page is known by its
 * sessionStorage (tests run several "tabs" in one process).
 */
const heldByPage = new WeakMap();
function heldIn(env) {
  const page = env.sessionStorage || heldByPage;
  if (!heldByPage.has(page)) heldByPage.set(page, new Set());
  return heldByPage.get(page);
}

// ---------------------------------------------------------------------------------------
// The client.

/**
 * Connects to a campaign. Returns at once; the client connects in the background and
 * reports through its events. See livetally.d.ts for every option and event.
 */
export function connect(options) {
  return new Client(options);
}

class Client {
  constructor(options = {}) {
    const env = { ...defaultEnv(), ...(options.env || {}) };
    this.env = env;
    const { campaign } = options;
    if (typeof campaign !== 'string' || !CAMPAIGN_ID.test(campaign)) {
      throw new LivetallyError('bad_campaign', `not a campaign id: ${campaign}`);
    }
    for (const [name, pattern] of [['viewer', CLIENT_ID], ['session', CLIENT_ID], ['region', REGION], ['unit', UNIT_CODE]]) {
      const v = options[name];
      if (v !== undefined && v !== null && v !== '' && !(typeof v === 'string' && pattern.test(v))) {
        throw new LivetallyError(`bad_${name}`, `${name} must match ${pattern}`);
      }
    }
    this.campaign = campaign;
    this.base = resolveBase(options.base, env);
    this.operator = options.role === 'operator';
    this.token = options.token || '';
    this.region = options.region || '';
    /**
     * The viewer's unit of the campaign's org, sent as `?unit=` (unverified: a join token's
     * `unit` claim takes precedence on the server and is the verified way). Without the
     * option, the page's own `?unit=`: the links pushed down an organisation carry it.
     */
    this.unit = options.unit === undefined && !this.operator ? pageUnit(env) : options.unit || '';
    /** The viewer's branch from the last `unit` frame: `[{code, name, viewers}]`, top first. */
    this.branch = null;
    /** Operators: the unit whose children `watch()` follows (null: the top level); undefined: none. */
    this.watching = undefined;
    this.local = safeStorage(env.localStorage);
    this.tabs = safeStorage(env.sessionStorage);
    this.listeners = new Map();
    /** connecting | open | closed | ended */
    this.state = 'connecting';
    this.stats = null;
    this.tickMs = 1000;
    this.ledger = null;
    this.final = false;
    this.ws = null;
    this.welcomed = false;
    /** Welcomed with `acked_seq: null`: nothing is sent until the ack with the stored seq. */
    this.claiming = false;
    this.attempt = 0;
    this.everOpen = false;
    this.timers = { reconnect: null, flush: null, probe: null };
    this.lastHeard = 0;
    this.lastFlush = -Infinity;
    this.lastResumedElsewhere = -Infinity;
    this.bucket = { tokens: SEND_BURST, at: env.now(), rate: SEND_RATE, burst: SEND_BURST };
    this.release = null;

    const claims = this.token ? tokenClaims(this.token) : null;
    /** With a `sub` claim the token names the viewer: the socket is sent no `viewer`. */
    this.subject = claims && CLIENT_ID.test(claims.sub || '') ? claims.sub : '';
    if (this.operator) this.viewer = '';
    else if (this.subject) this.viewer = this.subject;
    else if (options.viewer) this.viewer = options.viewer;
    else this.viewer = storedViewer(this.local, env);

    this.onOnline = () => {
      if (this.final) return;
      if (this.ws && this.welcomed) this.probe();
      else if (this.timers.reconnect !== null || this.waitingForNetwork) { this.attempt = 0; this.open(); }
    };
    // The browser lost every network: nothing can cross the socket, and a real outage may
    // leave it looking open for minutes. Close it and wait for `online` (taps wait in the
    // ledger; the session resumes, so the viewer is still counted once).
    this.onOffline = () => {
      if (this.final) return;
      this.clearTimer('reconnect');
      this.waitingForNetwork = true;
      if (this.ws) {
        this.dropSocket(1000, 'offline');
        this.setState('closed', { code: 1000 });
      } else {
        this.emitState({ offline: true });
      }
    };
    this.onVisible = () => {
      if (env.document && env.document.visibilityState === 'visible' && this.timers.reconnect !== null) this.open();
    };
    if (env.window) {
      env.window.addEventListener('online', this.onOnline);
      env.window.addEventListener('offline', this.onOffline);
    }
    if (env.document) env.document.addEventListener('visibilitychange', this.onVisible);

    // Deferred, so that listeners added right after connect() hear every event.
    this.ready = Promise.resolve().then(() => this.start(options));
  }

  /** Subscribes `fn` to `event`; returns a function that unsubscribes it. */
  on(event, fn) {
    if (!this.listeners.has(event)) this.listeners.set(event, new Set());
    this.listeners.get(event).add(fn);
    return () => this.listeners.get(event).delete(fn);
  }

  emit(event, ...args) {
    for (const fn of [...(this.listeners.get(event) || [])]) {
      try { fn(...args); } catch (e) { this.env.setTimeout(() => { throw e; }, 0); }
    }
  }

  setState(state, info = {}) {
    this.state = state;
    this.emitState(info);
  }

  emitState(info = {}) {
    this.emit('state', this.state, { attempt: this.attempt, final: this.final, offline: !this.env.onLine(), ...info });
  }

  /** The session id (after the ledger is claimed), for display and support. */
  get session() {
    return this.ledger ? this.ledger.session : '';
  }

  /** The highest seq the server acknowledged for the session. */
  get acked() {
    return this.ledger ? this.ledger.acked : 0;
  }

  /** Taps not acknowledged yet, of `kind` or of every kind. */
  pending(kind) {
    return this.ledger ? this.ledger.count(kind) : 0;
  }

  async start(options) {
    if (this.token && !this.operator) {
      const problem = tokenProblem(this.token, this.campaign, this.env.now());
      if (problem) {
        this.fail(problem, problem === 'token_expired' ? 'the join token has expired' : 'the join token is not for this campaign');
        return;
      }
    }
    if (!this.operator) {
      try {
        this.fixedSession = options.session || '';
        const { ledger, release } = await claimLedger(this.env, this.local, this.tabs, this.campaign, this.fixedSession);
        this.ledger = ledger;
        this.release = release;
      } catch (e) {
        this.fail(e.code || 'storage', e.message);
        return;
      }
      if (this.final) { this.releaseLedger(); return; }
      if (this.ledger.count() > 0) this.emit('pending', this.ledger.count());
    }
    this.open();
  }

  /** Opens a new socket, closing the current one. */
  open() {
    this.clearTimer('reconnect');
    this.waitingForNetwork = false;
    if (this.final) return;
    if (!this.operator && !this.ledger) return; // still claiming: start() opens
    this.dropSocket(1000, 'reconnecting');
    this.setState('connecting');
    this.opening = null;
    if (this.operator) { this.openOperator(); return; }
    this.openSocket(this.socketPath());
  }

  /**
   * An operator socket authenticates with a single-use ticket (valid 60 s) minted with the
   * operator token in an `Authorization` header: the token never rides in a socket URL,
   * where proxies' access logs would keep it (docs/protocol.md).
   */
  async openOperator() {
    const attempt = {};
    this.opening = attempt;
    const path = `/api/v1/campaigns/${encodeURIComponent(this.campaign)}/tickets`;
    const r = await this.request('POST', path, { bearer: this.token });
    if (this.final || this.opening !== attempt || this.ws) return;
    this.opening = null;
    if (!r.ok || !r.data || typeof r.data.ticket !== 'string') {
      // Refused or unreachable as a socket would be: diagnose, then retry with backoff.
      this.onClosed(1006, false);
      return;
    }
    const params = new URLSearchParams({ role: 'operator', ticket: r.data.ticket });
    this.openSocket(`/ws/v1/campaigns/${encodeURIComponent(this.campaign)}?${params}`);
  }

  /** Opens the socket at `path` (the socket URL's path and query). */
  openSocket(path) {
    const { env } = this;
    const url = `${this.base.replace(/^http/, 'ws')}${path}`;
    let ws;
    try {
      ws = new env.WebSocket(url);
    } catch (e) {
      this.emit('error', new LivetallyError('socket', String((e && e.message) || e)));
      this.scheduleReconnect(false);
      return;
    }
    this.ws = ws;
    this.welcomed = false;
    this.claiming = false;
    ws.onmessage = (ev) => {
      if (this.ws !== ws || typeof ev.data !== 'string') return;
      this.lastHeard = env.now();
      let msg;
      try { msg = JSON.parse(ev.data); } catch { return; }
      if (msg && typeof msg === 'object') this.onMessage(ws, msg);
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.clearTimer('probe');
      this.onClosed(ev.code, this.welcomed);
    };
  }

  /**
   * A viewer socket URL's path and query (a plain GET of it answers what the upgrade got).
   * Operators open theirs with a ticket (`openOperator`).
   */
  socketPath() {
    const params = new URLSearchParams();
    if (!this.subject) params.set('viewer', this.viewer);
    params.set('session', this.ledger.session);
    // Protocol 2: during a store outage the server welcomes at once with
    // `acked_seq: null` and tells the stored acked seq with an ack once it knows it.
    params.set('proto', '2');
    if (this.region) params.set('region', this.region);
    if (this.unit) params.set('unit', this.unit);
    if (this.token) params.set('token', this.token);
    return `/ws/v1/campaigns/${encodeURIComponent(this.campaign)}?${params}`;
  }

  /**
   * After a failed upgrade: seconds the node asks this client to wait (429 `rate_limited`
   * with `Retry-After`: its connect budget is spent), else 0. A browser cannot read a
   * refused upgrade's status, so it asks with a plain GET of the socket URL, which spends
   * nothing. Operators are exempt from the budget and never ask.
   */
  async connectRefusedFor() {
    if (this.operator) return 0;
    const r = await this.request('GET', this.socketPath());
    if (r.status !== 429 || !r.response) return 0;
    const retry = Number(r.response.headers.get('retry-after'));
    return Number.isFinite(retry) && retry > 0 ? retry : 0;
  }

  dropSocket(code, reason) {
    this.clearTimer('probe');
    if (!this.ws) return;
    const ws = this.ws;
    this.ws = null;
    try { ws.close(code, reason); } catch { /* already closing */ }
  }

  onMessage(ws, msg) {
    switch (msg.type) {
      case 'welcome': return this.onWelcome(msg);
      case 'stats':
        this.stats = msg;
        this.emit('stats', msg);
        return undefined;
      case 'ack': return this.onAck(Number(msg.seq) || 0);
      case 'error': return this.onServerError(ws, msg);
      case 'unit':
        // The viewer's own branch, down to the levels counted live (at most every 5 s).
        if (!Array.isArray(msg.path)) return undefined;
        this.branch = msg.path;
        this.emit('unit', msg);
        return undefined;
      case 'units':
        // An operator's watched level, each tick in which it changed.
        this.emit('units', msg);
        return undefined;
      default: return undefined;
    }
  }

  onWelcome(msg) {
    this.welcomed = true;
    this.attempt = 0;
    this.everOpen = true;
    if (Number.isFinite(msg.tick_ms) && msg.tick_ms > 0) this.tickMs = msg.tick_ms;
    if (!this.operator && typeof msg.viewer === 'string' && CLIENT_ID.test(msg.viewer)) this.viewer = msg.viewer;
    if (this.ledger) {
      if (typeof msg.session === 'string' && CLIENT_ID.test(msg.session) && msg.session !== this.ledger.session) {
        this.ledger.session = msg.session;
      }
      // `acked_seq: null`: the server could not reach its store to claim the session yet.
      // Where to resume is unknown, so nothing is sent (taps wait in the ledger) until the
      // first ack, which carries the stored acked seq (see onAck).
      this.claiming = msg.acked_seq === null;
      // What the welcome settles is in its stats already (or in the next frame).
      if (!this.claiming) {
        for (const w of this.ledger.rebase(Number(msg.acked_seq) || 0).waiters) w.resolve();
      }
    }
    // The server's bucket for this socket starts full; so does ours.
    this.bucket.tokens = this.bucket.burst;
    this.bucket.at = this.env.now();
    if (msg.stats) this.stats = { type: 'stats', campaign: msg.campaign, ...msg.stats };
    this.setState('open');
    this.emit('welcome', msg);
    // A new socket watches nothing: ask again for what this operator watched.
    this.sendWatch();
    if (this.ledger) this.emit('pending', this.ledger.count());
    if (this.stats) this.emit('stats', this.stats);
    this.flush();
  }

  onAck(seq) {
    if (!this.ledger) return;
    this.clearTimer('probe');
    if (this.claiming) {
      // The claim landed: this is the stored acked seq the welcome could not tell.
      this.claiming = false;
      for (const w of this.ledger.rebase(seq).waiters) w.resolve();
      this.emit('ack', { seq, settled: {} });
      this.emit('pending', this.ledger.count());
      this.flush();
      return;
    }
    const { settled, waiters } = this.ledger.ack(seq);
    for (const w of waiters) w.resolve();
    this.emit('ack', { seq, settled });
    if (waiters.length || Object.keys(settled).length) this.emit('pending', this.ledger.count());
    this.armProbe();
  }

  /**
   * An `error` for one of our numbered messages means the server did not take that seq, so
   * the rest would be gaps. Resynchronise through a new socket: its welcome says exactly
   * what was counted. A message refused for its content is dropped (it never will be
   * counted); being rate limited halves our own rate.
   */
  onServerError(ws, msg) {
    const code = String(msg.code || 'error');
    this.emit('error', new LivetallyError(code, String(msg.message || code), { seq: msg.seq }));
    if (!this.ledger || !Number.isSafeInteger(msg.seq)) return;
    if ([SOCKET_ERROR.UNKNOWN_KIND, SOCKET_ERROR.BAD_COUNT].includes(code)) {
      for (const w of this.ledger.drop(msg.seq)) w.reject(new LivetallyError(code, String(msg.message || code)));
    }
    if (code === SOCKET_ERROR.RATE_LIMITED) this.bucket.rate = Math.max(1, this.bucket.rate / 2);
    if (this.ws === ws) {
      this.dropSocket(1000, 'resync');
      this.attempt = Math.max(this.attempt, code === SOCKET_ERROR.STORE_UNAVAILABLE ? 2 : 1);
      this.setState('closed', { code: 1000 });
      this.scheduleReconnect(true);
    }
  }

  async onClosed(code, welcomed) {
    if (this.final) return;
    if (code === CLOSE.ENDED) { this.ended(); return; }
    if (code === CLOSE.POLICY) this.bucket.rate = Math.max(1, this.bucket.rate / 2);
    if (code === CLOSE.RESUMED_ELSEWHERE && this.ledger) {
      // Another socket resumed our session. Once is a race with our own previous socket;
      // twice in a row means another page shares it (a browser without Web Locks let a
      // duplicated tab keep our id): this client moves to a session of its own, taking
      // only the taps it never sent (what was sent belongs to the session's other holder).
      const now = this.env.now();
      if (now - this.lastResumedElsewhere < RESUMED_WINDOW_MS) {
        // A session the page chose is the page's to share out; we do not pick another.
        if (this.fixedSession) { this.fail('session_taken', 'another client resumed this session'); return; }
        this.moveToNewSession();
      }
      this.lastResumedElsewhere = now;
    }
    this.setState('closed', { code });
    // A socket that never got its welcome was refused before the upgrade (404, 410, 401,
    // 403, 429, 503...), which a browser cannot see. Past the connect budget the next try
    // waits what Retry-After says (plus up to half again, so a crowd behind one address
    // does not come back at once); otherwise ask the API, on the first failure and then
    // every few attempts.
    if (!welcomed) {
      const wait = await this.connectRefusedFor();
      if (this.final || this.ws) return;
      if (wait > 0) {
        this.scheduleReconnect(false, wait * 1000 * (1 + 0.5 * this.env.random()));
        return;
      }
    }
    if (!welcomed && (this.attempt === 0 || this.attempt % 4 === 3)) {
      const stop = await this.diagnose();
      if (stop || this.final || this.ws) return;
    }
    this.scheduleReconnect(welcomed);
  }

  moveToNewSession() {
    const old = this.ledger;
    const unsent = old.unsent();
    old.pending = old.pending.filter((m) => m.seq <= old.sent);
    for (const w of old.allWaiters()) w.reject(new LivetallyError('session_taken', 'another page took this session'));
    old.save();
    this.releaseLedger();
    const slot = randomId(12, this.env);
    this.tabs.set(TAB_KEY, slot);
    const ledger = new Ledger(this.local, `${LEDGER_PREFIX}${this.campaign}.${slot}`,
      { now: this.env.now, newSession: () => randomId(16, this.env) });
    this.ledger = ledger;
    holdLock(this.env, `${LOCK_PREFIX}${this.campaign}.${slot}`).then((release) => {
      if (this.ledger === ledger && !this.final) this.release = release || (() => {});
      else if (release) release();
    });
    for (const m of unsent) {
      this.ledger.add(m.kind, m.count, null);
      this.ledger.pending[this.ledger.pending.length - 1].waiters.push(...m.waiters);
    }
  }

  /** Decides from the API whether trying again makes sense; true when the client stopped. */
  async diagnose() {
    const r = await this.request('GET', `/api/v1/campaigns/${encodeURIComponent(this.campaign)}`);
    if (this.final) return true;
    if (r.status === 404 && !this.everOpen) { this.fail('not_found', 'no such campaign'); return true; }
    if (r.ok && r.data) {
      if (r.data.state === 'ended') { this.ended(); return true; }
      if (!this.operator && r.data.access === 'token' && !this.token) {
        this.fail('token_required', 'this campaign admits viewers with a join token only');
        return true;
      }
    }
    if (this.operator && (r.ok || r.status === 404)) {
      const auth = await this.request('GET', '/api/v1/campaigns', { bearer: this.token });
      if (this.final) return true;
      if (auth.status === 401 || auth.status === 403) {
        this.fail('unauthorized', 'the operator token was refused');
        return true;
      }
    }
    return false;
  }

  /** Schedules the next try: after the backoff, and not before `atLeast` ms. */
  scheduleReconnect(wasOpen, atLeast = 0) {
    if (this.final) return;
    const backoff = wasOpen && this.attempt === 0
      ? 100 + this.env.random() * 900
      : backoffDelay(this.attempt, this.env.random);
    const delay = Math.max(backoff, atLeast);
    this.attempt += 1;
    this.clearTimer('reconnect');
    if (!this.env.onLine()) {
      this.waitingForNetwork = true; // the `online` event brings us back
      return;
    }
    this.timers.reconnect = this.env.setTimeout(() => { this.timers.reconnect = null; this.open(); }, delay);
  }

  /**
   * Operators: follows the children of `unit` in the campaign's org (`null`: the top-level
   * units and `unassigned`). The node answers with a `units` event at once and then each
   * tick in which they changed; a reconnect asks again. Throws `not_an_operator` for a
   * viewer and `bad_unit` for a code outside the org's pattern.
   */
  watch(unit) {
    if (!this.operator) throw new LivetallyError('not_an_operator', 'only an operator watcher can watch units');
    if (unit !== null && !(typeof unit === 'string' && UNIT_CODE.test(unit))) {
      throw new LivetallyError('bad_unit', `unit must be null or match ${UNIT_CODE}`);
    }
    this.watching = unit;
    this.sendWatch();
  }

  sendWatch() {
    if (this.watching === undefined || !this.ws || !this.welcomed) return;
    try {
      this.ws.send(JSON.stringify({ type: 'watch', unit: this.watching }));
    } catch { /* closing: the next welcome asks again */ }
  }

  /** Reconnects now (a "retry" button), skipping the backoff. */
  reconnect() {
    if (this.final) return;
    this.attempt = 0;
    this.open();
  }

  // -------------------------------------------------------------------------------------
  // Sending: interactions are batched per BATCH_MS and paced by a token bucket.

  /**
   * `count` interactions of `kind`. Resolves once the server acknowledged them (counted
   * exactly once); rejects with `campaign_ended` when the campaign ends first.
   */
  interact(kind, count = 1) {
    if (this.operator) return Promise.reject(new LivetallyError('not_a_viewer', 'an operator watcher cannot interact'));
    if (typeof kind !== 'string' || !KIND.test(kind)) return Promise.reject(new LivetallyError(SOCKET_ERROR.UNKNOWN_KIND, `not a kind: ${kind}`));
    if (!Number.isInteger(count) || count < 1 || count > MAX_COUNT) {
      return Promise.reject(new LivetallyError(SOCKET_ERROR.BAD_COUNT, `count must be an integer from 1 to ${MAX_COUNT}`));
    }
    if (this.state === 'ended') return Promise.reject(new LivetallyError('campaign_ended', 'the campaign has ended'));
    if (this.final) return Promise.reject(new LivetallyError('closed', 'the client is closed'));
    return new Promise((resolve, reject) => {
      const waiter = { resolve, reject };
      const add = () => {
        if (this.state === 'ended') { reject(new LivetallyError('campaign_ended', 'the campaign has ended')); return; }
        if (this.final || !this.ledger) { reject(new LivetallyError('closed', 'the client is closed')); return; }
        this.ledger.add(kind, count, waiter);
        this.emit('pending', this.ledger.count());
        this.scheduleFlush();
      };
      if (this.ledger) add();
      else this.ready.then(add);
    });
  }

  takeToken() {
    const b = this.bucket;
    const now = this.env.now();
    b.tokens = Math.min(b.burst, b.tokens + ((now - b.at) / 1000) * b.rate);
    b.at = now;
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  /** Sends now if the last flush was long enough ago, else at the end of the window. */
  scheduleFlush() {
    if (this.timers.flush !== null) return;
    const wait = BATCH_MS - (this.env.now() - this.lastFlush);
    if (wait <= 0) this.flush();
    else this.timers.flush = this.env.setTimeout(() => { this.timers.flush = null; this.flush(); }, wait);
  }

  flush() {
    if (!this.isOpen() || !this.ledger) return;
    const unsent = this.ledger.unsent();
    if (unsent.length) this.lastFlush = this.env.now();
    for (const m of unsent) {
      if (!this.takeToken()) {
        this.clearTimer('flush');
        this.timers.flush = this.env.setTimeout(() => { this.timers.flush = null; this.flush(); },
          Math.ceil(1000 / this.bucket.rate));
        break;
      }
      this.ws.send(JSON.stringify({ type: 'interact', kind: m.kind, count: m.count, seq: m.seq }));
      this.ledger.sent = m.seq;
    }
    this.armProbe();
  }

  isOpen() {
    return this.state === 'open' && this.ws !== null && this.welcomed && !this.claiming;
  }

  /** While acks are awaited, a silent socket is probed after PROBE_AFTER_MS. */
  armProbe() {
    if (this.timers.probe !== null || !this.ledger || this.ledger.sent <= this.ledger.acked) return;
    this.timers.probe = this.env.setTimeout(() => {
      this.timers.probe = null;
      if (this.env.now() - this.lastHeard >= PROBE_AFTER_MS) this.probe();
      else this.armProbe();
    }, PROBE_AFTER_MS);
  }

  /**
   * Resends the last message sent: never counted twice, answered at once with the current
   * ack (even while the store is down), so silence after it means the socket is dead.
   */
  probe() {
    if (!this.isOpen() || !this.ledger) return;
    const last = this.ledger.pending.filter((m) => m.seq <= this.ledger.sent).pop();
    if (!last || !this.takeToken()) { this.armProbe(); return; }
    const ws = this.ws;
    const asked = this.env.now();
    ws.send(JSON.stringify({ type: 'interact', kind: last.kind, count: last.count, seq: last.seq }));
    this.clearTimer('probe');
    this.timers.probe = this.env.setTimeout(() => {
      this.timers.probe = null;
      if (this.ws !== ws) return;
      if (this.lastHeard < asked) {
        this.dropSocket(1000, 'no answer');
        this.setState('closed', { code: 1000 });
        this.scheduleReconnect(true);
      } else {
        this.armProbe();
      }
    }, PROBE_TIMEOUT_MS);
  }

  // -------------------------------------------------------------------------------------
  // Sign-up.

  /**
   * Registers this viewer for the campaign (`POST …/registrations`), with the sign-up
   * `fields` when given. Resolves `{created, status}`: created is false when the viewer was
   * registered before. Rejects with a LivetallyError (`campaign_ended`, `rate_limited`
   * with `retryAfter`, `invalid` with `field`, `network`, ...) carrying the HTTP `status`.
   */
  async register(fields) {
    if (this.operator || !this.viewer) throw new LivetallyError('not_a_viewer', 'an operator watcher cannot register');
    const body = { viewer: this.viewer };
    if (fields && Object.keys(fields).length) body.fields = fields;
    // The sign-up is counted for the viewer's unit (a token's claim takes precedence).
    if (this.unit) body.unit = this.unit;
    const query = this.token ? `?token=${encodeURIComponent(this.token)}` : '';
    const r = await this.request('POST', `/api/v1/campaigns/${encodeURIComponent(this.campaign)}/registrations${query}`, { body });
    if (r.status === 201 || r.status === 200) return { created: r.status === 201, status: r.status };
    const err = r.data && r.data.error ? r.data.error : {};
    const code = r.status === 0 ? 'network' : apiErrorCode(r.status, err.code);
    const retry = r.response && Number(r.response.headers.get('retry-after'));
    throw new LivetallyError(code, err.message || code, {
      status: r.status, field: err.field, retryAfter: Number.isFinite(retry) && retry > 0 ? retry : undefined,
    });
  }

  /** The JSON API; never throws: `{status, ok, data, response}`, status 0 when unreachable. */
  request(method, path, options) {
    return requestJSON(this.env, method, this.base + path, options);
  }

  // -------------------------------------------------------------------------------------
  // Stopping.

  /** The campaign ended: what is unacknowledged now was not counted and never will be. */
  ended() {
    if (this.final) return;
    if (this.ledger) {
      for (const w of this.ledger.allWaiters()) w.reject(new LivetallyError('campaign_ended', 'the campaign has ended'));
      this.ledger.clear();
    }
    this.stop('ended');
    this.releaseLedger();
  }

  /** Stops for good with `code` (a fatal refusal): the ledger stays for a later page. */
  fail(code, message) {
    this.emit('error', new LivetallyError(code, message, { fatal: true }));
    this.shutdown(code);
  }

  /** Closes the socket for good. Unacknowledged taps stay in the ledger for the next page. */
  close() {
    this.shutdown('closed');
  }

  /** Stops with state `closed`; what `interact()` still waits for rejects with `code`. */
  shutdown(code) {
    if (this.final) return;
    if (this.ledger) {
      for (const w of this.ledger.allWaiters()) w.reject(new LivetallyError(code, 'the client is closed'));
    }
    this.stop('closed');
    this.releaseLedger();
  }

  stop(state) {
    this.final = true;
    for (const name of Object.keys(this.timers)) this.clearTimer(name);
    this.dropSocket(1000, 'closed');
    const { env } = this;
    if (env.window) {
      env.window.removeEventListener('online', this.onOnline);
      env.window.removeEventListener('offline', this.onOffline);
    }
    if (env.document) env.document.removeEventListener('visibilitychange', this.onVisible);
    this.setState(state);
  }

  releaseLedger() {
    if (this.release) this.release();
    this.release = null;
  }

  clearTimer(name) {
    if (this.timers[name] !== null) this.env.clearTimeout(this.timers[name]);
    this.timers[name] = null;
  }
}

/** The page URL's `?unit=` when it is a unit code, else ''. */
function pageUnit(env) {
  try {
    const unit = new URL(env.location.href).searchParams.get('unit') || '';
    return UNIT_CODE.test(unit) ? unit : '';
  } catch {
    return '';
  }
}

function resolveBase(base, env) {
  const href = base || (env.location && env.location.href);
  if (!href) throw new LivetallyError('bad_base', 'base is required outside a browser page');
  const u = new URL(href);
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new LivetallyError('bad_base', `not an http(s) URL: ${href}`);
  return base ? `${u.origin}${u.pathname.replace(/\/+$/, '')}` : u.origin;
}

/** The browser's stable anonymous viewer id, shared by every campaign and tab. */
function storedViewer(local, env) {
  let v = local.get(VIEWER_KEY);
  if (!v || !CLIENT_ID.test(v)) {
    v = randomId(16, env);
    local.set(VIEWER_KEY, v);
  }
  return v;
}

/** The JSON API at `url`; never throws: `{status, ok, data, response}`, status 0 when unreachable. */
async function requestJSON(env, method, url, { body, bearer } = {}) {
  const headers = {};
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (bearer) headers.Authorization = `Bearer ${bearer}`;
  let response;
  try {
    response = await env.fetch(url, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: 'no-store', credentials: 'omit',
    });
  } catch {
    return { status: 0, ok: false, data: null, response: null };
  }
  let data = null;
  if ((response.headers.get('content-type') || '').includes('application/json')) {
    try { data = await response.json(); } catch { data = null; }
  }
  return { status: response.status, ok: response.ok, data, response };
}

// ---------------------------------------------------------------------------------------
// Numbers as a page shows them.

const numberFormats = new Map();
function numberFormat(lang, compact) {
  const key = `${lang}|${compact}`;
  if (!numberFormats.has(key)) {
    numberFormats.set(key, new Intl.NumberFormat(lang, compact ? { notation: 'compact', maximumFractionDigits: 1 } : {}));
  }
  return numberFormats.get(key);
}

/** `1,234,567`, grouped as `lang` groups digits. */
export function formatNumber(n, lang) {
  return numberFormat(lang, false).format(n ?? 0);
}

/** Exact below 10,000, then `12K` / `1.2万`: a count for a button. */
export function formatCompact(n, lang) {
  const v = n ?? 0;
  return numberFormat(lang, v >= 10000).format(v);
}

// ---------------------------------------------------------------------------------------
// A campaign as a page shows it: the viewer page, <livetally-widget> and a brand's own UI
// (the React and Vue recipes of docs/embedding.md) all show the same states and counts.

/** The page state for a fatal error code of the client; any other code is `closed`. */
const STOP_REASONS = {
  not_found: 'missing', token_required: 'private', token_expired: 'expired', token_invalid: 'wrong_campaign',
};
/** States in which a tap is taken: the client keeps it until the node acknowledges it. */
const TAPPABLE = ['connecting', 'live', 'reconnecting'];

/**
 * Loads the campaign (retrying while the node is unreachable), explains why a viewer cannot
 * join before trying, connects, and keeps what a page shows: its state, the latest stats
 * and totals that include the viewer's own taps at once. See livetally.d.ts.
 */
export function liveView(options) {
  return new LiveView(options);
}

class LiveView {
  constructor(options = {}) {
    this.options = { ...options };
    this.env = { ...defaultEnv(), ...(options.env || {}) };
    this.listeners = new Map();
    /** loading | connecting | live | reconnecting | ended | missing | private | expired | closed */
    this.state = 'loading';
    /** Why it stopped: the state, or `wrong_campaign` (state `private`); '' while going. */
    this.reason = '';
    this.campaign = null;
    this.client = null;
    this.stats = { viewers: 0, peak_viewers: 0, interactions: {} };
    /** The viewer's branch from the last `unit` frame (`[{code, name, viewers}]`), or null. */
    this.branch = null;
    this.offline = !this.env.onLine();
    this.final = false;
    this.everLive = false;
    /**
     * The highest total seen per kind. A campaign's totals never go down, but a frame can be
     * older than one already shown: the welcome of a node that has not read the store yet,
     * or a node a tick behind the one before a reconnect.
     */
    this.highest = {};
    /** Acknowledged taps by kind that no stats frame carried yet, so counts do not dip. */
    this.awaiting = {};
    this.timers = { awaiting: null, load: null };
    this.onNetwork = () => {
      this.offline = !this.env.onLine();
      this.emit('state', this.state, this);
    };
    if (this.env.window) {
      this.env.window.addEventListener('online', this.onNetwork);
      this.env.window.addEventListener('offline', this.onNetwork);
    }
    this.ready = Promise.resolve().then(() => this.start());
  }

  /** Subscribes `fn` to `event`; returns a function that unsubscribes it. */
  on(event, fn) {
    if (!this.listeners.has(event)) this.listeners.set(event, new Set());
    this.listeners.get(event).add(fn);
    return () => this.listeners.get(event).delete(fn);
  }

  emit(event, ...args) {
    for (const fn of [...(this.listeners.get(event) || [])]) {
      try { fn(...args); } catch (e) { this.env.setTimeout(() => { throw e; }, 0); }
    }
  }

  /** True while a tap is taken (kept by the client until the node counts it). */
  get tappable() {
    return TAPPABLE.includes(this.state) && this.client !== null;
  }

  /** This viewer's taps the node has not acknowledged yet, of `kind` or of every kind. */
  pending(kind) {
    return this.client ? this.client.pending(kind) : 0;
  }

  /** The total of `kind` to show: the highest seen, the viewer's pending and acknowledged taps. */
  total(kind) {
    return (this.highest[kind] || 0) + this.pending(kind) + (this.awaiting[kind] || 0);
  }

  /** `count` taps of `kind`; resolves once counted (the client's `interact`). */
  interact(kind, count = 1) {
    if (!this.tappable) {
      const code = this.state === 'ended' ? 'campaign_ended' : 'not_connected';
      return Promise.reject(new LivetallyError(code, `no taps while ${this.state}`));
    }
    return this.client.interact(kind, count);
  }

  async start() {
    const id = this.options.campaign;
    if (typeof id !== 'string' || !CAMPAIGN_ID.test(id)) { this.stop('missing'); return; }
    try {
      this.base = resolveBase(this.options.base, this.env);
    } catch (e) {
      this.emit('error', e);
      this.stop('closed');
      return;
    }
    const campaign = await this.load(id);
    if (this.final) return;
    if (!campaign) { this.stop('missing'); return; }
    this.campaign = campaign;
    if (campaign.stats) this.absorb(campaign.stats);
    this.emit('campaign', campaign);
    if (campaign.state === 'ended') { this.ended(); return; }
    const token = this.options.token || '';
    if (campaign.access === 'token' && !token) { this.stop('private'); return; }
    const problem = token ? tokenProblem(token, campaign.id, this.env.now()) : '';
    if (problem) { this.stop(STOP_REASONS[problem]); return; }
    this.setState('connecting');
    this.open();
  }

  /** The campaign object, retried with backoff while the node is unreachable; null when there is none. */
  async load(id) {
    for (let attempt = 0; !this.final; attempt++) {
      const r = await requestJSON(this.env, 'GET', `${this.base}/api/v1/campaigns/${encodeURIComponent(id)}`);
      if (this.final) return null;
      if (r.ok && r.data) return r.data;
      if (r.status === 404) return null;
      this.setState('reconnecting');
      await new Promise((resolve) => { this.timers.load = this.env.setTimeout(resolve, backoffDelay(attempt, this.env.random)); });
    }
    return null;
  }

  open() {
    const { options } = this;
    let client;
    try {
      client = connect({
        base: this.base, campaign: this.campaign.id, token: options.token || undefined, region: options.region || undefined,
        unit: options.unit, viewer: options.viewer, session: options.session, env: options.env,
      });
    } catch (e) {
      // A malformed option (`region`, `viewer`): nothing to connect with.
      this.emit('error', e);
      this.stop('closed');
      return;
    }
    this.client = client;
    client.on('welcome', (w) => {
      this.awaiting = {};
      this.emit('welcome', w);
    });
    client.on('stats', (s) => {
      this.absorb(s);
      this.awaiting = {};
      this.emit('stats', this.stats);
    });
    client.on('ack', ({ settled }) => this.onAck(settled));
    client.on('pending', () => this.emit('counts'));
    client.on('unit', (msg) => {
      this.branch = msg.path;
      this.emit('unit', msg);
    });
    client.on('state', (state, info = {}) => this.onClientState(state, info));
    client.on('error', (e) => {
      if (e.fatal) this.stop(STOP_REASONS[e.code] || 'closed');
      this.emit('error', e);
    });
  }

  /** Acknowledged taps count at once; the next stats frame carries them, forget them a little after it is due. */
  onAck(settled) {
    for (const [kind, n] of Object.entries(settled || {})) this.awaiting[kind] = (this.awaiting[kind] || 0) + n;
    this.clearTimer('awaiting');
    this.timers.awaiting = this.env.setTimeout(() => {
      this.timers.awaiting = null;
      this.awaiting = {};
      this.emit('counts');
    }, this.client.tickMs * 2 + 1000);
    this.emit('counts');
  }

  onClientState(state, info) {
    this.offline = Boolean(info.offline);
    if (state === 'open') {
      this.everLive = true;
      this.setState('live');
    } else if (state === 'ended') {
      this.ended();
    } else if (!info.final) {
      // Acknowledged taps not yet in a frame stay shown while the socket is down: no frame
      // comes before the next welcome, whose totals include them.
      if (state === 'closed') this.clearTimer('awaiting');
      // Down, and the client tries again: "connecting" until the first welcome.
      this.setState(this.everLive ? 'reconnecting' : 'connecting');
    }
  }

  absorb(stats) {
    this.stats = stats;
    for (const [kind, n] of Object.entries(stats.interactions || {})) {
      if (!(n <= this.highest[kind])) this.highest[kind] = n;
    }
  }

  setState(state) {
    this.state = state;
    this.emit('state', state, this);
  }

  /**
   * The campaign is over (the node said so, or a page learned it, e.g. from a sign-up
   * answered `campaign_ended`): nobody watches any more; the final totals follow.
   */
  ended() {
    if (this.final) return;
    this.stop('ended');
    this.awaiting = {};
    this.stats = { ...this.stats, viewers: 0 };
    this.emit('stats', this.stats);
    if (!this.campaign) return;
    requestJSON(this.env, 'GET', `${this.base}/api/v1/campaigns/${encodeURIComponent(this.campaign.id)}/stats`).then((r) => {
      if (!r.ok || !r.data || this.state !== 'ended' || this.closedByPage) return;
      this.absorb(r.data);
      this.emit('stats', this.stats);
    });
  }

  /** Stops with `reason`; the client closes, keeping unacknowledged taps for a later page. */
  stop(reason) {
    if (this.final) return;
    this.final = true;
    this.reason = reason;
    this.teardown();
    this.setState(reason === 'wrong_campaign' ? 'private' : reason);
  }

  /** The page is done with the view (an element removed, a component unmounted): no more events. */
  close() {
    this.closedByPage = true;
    this.final = true;
    this.teardown();
    this.listeners.clear();
  }

  teardown() {
    for (const name of Object.keys(this.timers)) this.clearTimer(name);
    if (this.client) this.client.close();
    if (this.env.window) {
      this.env.window.removeEventListener('online', this.onNetwork);
      this.env.window.removeEventListener('offline', this.onNetwork);
    }
  }

  clearTimer(name) {
    if (this.timers[name] !== null) this.env.clearTimeout(this.timers[name]);
    this.timers[name] = null;
  }
}
