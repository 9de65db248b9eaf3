// Fakes of what the SDK uses of a browser, so its logic runs under plain Node: a clock with
// timers that only move when a test says so, WebSockets a test plays the server of, Storage,
// Web Locks, fetch and the window's online/offline events.

import { webcrypto } from 'node:crypto';

/** Timers on a virtual clock: `advance(ms)` runs what falls due, in order. */
export class Clock {
  constructor(start = 1_800_000_000_000) {
    this.t = start;
    this.timers = new Map();
    this.nextId = 1;
  }

  now = () => this.t;

  setTimeout = (fn, ms = 0) => {
    const id = this.nextId++;
    this.timers.set(id, { at: this.t + Math.max(0, ms), fn });
    return id;
  };

  clearTimeout = (id) => {
    this.timers.delete(id);
  };

  /** Moves time forward by `ms`, running due timers and settling promises between them. */
  async advance(ms) {
    const end = this.t + ms;
    for (;;) {
      await settle();
      let next = null;
      for (const [id, timer] of this.timers) {
        if (timer.at <= end && (!next || timer.at < next[1].at)) next = [id, timer];
      }
      if (!next) break;
      this.timers.delete(next[0]);
      this.t = next[1].at;
      next[1].fn();
    }
    this.t = end;
    await settle();
  }

  /** Delays of the pending timers, from now. */
  pending() {
    return [...this.timers.values()].map((t) => t.at - this.t);
  }
}

/** Lets every queued promise callback run. */
export async function settle() {
  for (let i = 0; i < 20; i++) await Promise.resolve();
  await new Promise((r) => setImmediate(r));
  for (let i = 0; i < 20; i++) await Promise.resolve();
}

/** `Storage` over a Map; tabs of one origin share a localStorage, each has its own session one. */
export class MemoryStorage {
  constructor(entries = []) {
    this.map = new Map(entries);
  }

  getItem(k) { return this.map.has(k) ? this.map.get(k) : null; }
  setItem(k, v) { this.map.set(k, String(v)); }
  removeItem(k) { this.map.delete(k); }
  key(i) { return [...this.map.keys()][i] ?? null; }
  get length() { return this.map.size; }
  /** Copies, as a duplicated tab copies sessionStorage. */
  clone() { return new MemoryStorage(this.map); }
}

/** Web Locks with `ifAvailable`, shared by the "tabs" of one origin. */
export class Locks {
  constructor() {
    this.held = new Set();
    this.waiting = new Map();
  }

  /** `ifAvailable`, or waits until the lock is free or `signal` aborts (AbortError). */
  request(name, options, cb) {
    if (!this.held.has(name)) return this.grant(name, cb);
    if (options.ifAvailable) return Promise.resolve(cb(null));
    return new Promise((resolve, reject) => {
      const queue = this.waiting.get(name) || [];
      const entry = () => this.grant(name, cb).then(resolve, reject);
      queue.push(entry);
      this.waiting.set(name, queue);
      options.signal?.addEventListener('abort', () => {
        const i = queue.indexOf(entry);
        if (i >= 0) queue.splice(i, 1);
        reject(new DOMException('aborted', 'AbortError'));
      });
    });
  }

  grant(name, cb) {
    this.held.add(name);
    return Promise.resolve(cb({ name })).finally(() => {
      this.held.delete(name);
      const next = (this.waiting.get(name) || []).shift();
      if (next) next();
    });
  }
}

/** A socket a test plays the server of. Every socket made is in `FakeSocket.all`. */
export function socketClass() {
  class FakeSocket {
    static all = [];

    constructor(url) {
      this.url = new URL(url);
      this.sent = [];
      this.closedWith = null;
      this.onmessage = null;
      this.onclose = null;
      FakeSocket.all.push(this);
    }

    static get last() {
      return FakeSocket.all[FakeSocket.all.length - 1];
    }

    send(data) {
      if (this.closedWith) throw new Error('send on a closed socket');
      this.sent.push(JSON.parse(data));
    }

    close(code, reason) {
      this.closedWith = { code, reason };
    }

    /** The server sends `msg`. */
    receive(msg) {
      this.onmessage?.({ data: JSON.stringify(msg) });
    }

    welcome({ acked = 0, viewer = this.url.searchParams.get('viewer') || 'server-viewer-1', stats = {} } = {}) {
      this.receive({
        type: 'welcome', campaign: 'launch', role: 'viewer', viewer,
        session: this.url.searchParams.get('session') || 'server-session-1', acked_seq: acked, tick_ms: 1000,
        stats: { viewers: 1, interactions: {}, ...stats },
      });
    }

    ack(seq) {
      this.receive({ type: 'ack', seq });
    }

    /** The server (or the network) closes the socket with `code`. */
    drop(code = 1006) {
      this.onclose?.({ code });
    }

    /** The interact messages sent, as `[seq, kind, count]`. */
    interacts() {
      return this.sent.filter((m) => m.type === 'interact').map((m) => [m.seq, m.kind, m.count]);
    }
  }
  return FakeSocket;
}

/** `fetch` answering from `routes`: `{'GET /path': {status, body, headers}}`; records calls. */
export function fakeFetch(routes = {}) {
  const calls = [];
  const fetch = async (url, init = {}) => {
    const u = new URL(url);
    const method = init.method || 'GET';
    calls.push({ method, path: u.pathname, query: u.search, body: init.body ? JSON.parse(init.body) : undefined, headers: init.headers });
    const r = routes[`${method} ${u.pathname}`];
    if (!r) throw new TypeError('fetch failed');
    const answer = typeof r === 'function' ? r(u, init) : r;
    const headers = new Map(Object.entries({ 'content-type': 'application/json', ...(answer.headers || {}) }));
    return {
      status: answer.status,
      ok: answer.status >= 200 && answer.status < 300,
      headers: { get: (k) => headers.get(k.toLowerCase()) ?? null },
      json: async () => answer.body,
    };
  };
  fetch.calls = calls;
  return fetch;
}

/** One browser "tab": its own sessionStorage and window, the origin's localStorage and locks. */
export function tab(origin, { sessionStorage = new MemoryStorage(), online = true } = {}) {
  const win = new EventTarget();
  const state = { online };
  return {
    WebSocket: origin.WebSocket,
    fetch: origin.fetch,
    localStorage: origin.localStorage,
    sessionStorage,
    locks: origin.locks,
    crypto: webcrypto,
    setTimeout: origin.clock.setTimeout,
    clearTimeout: origin.clock.clearTimeout,
    now: origin.clock.now,
    random: origin.random || (() => 0.5),
    onLine: () => state.online,
    window: win,
    document: null,
    location: null,
    /** The browser goes offline / online. */
    setOnline(v) {
      state.online = v;
      win.dispatchEvent(new Event(v ? 'online' : 'offline'));
    },
  };
}

/** An origin: shared localStorage, locks, sockets, fetch and clock. */
export function origin({ routes, locks = true } = {}) {
  return {
    clock: new Clock(),
    WebSocket: socketClass(),
    localStorage: new MemoryStorage(),
    locks: locks ? new Locks() : undefined,
    fetch: fakeFetch(routes),
  };
}
