// The viewer page, /c/{id}: the stream, the live count, reactions and sign-up.
//
// Every tap becomes part of a numbered `interact` message kept in a ledger in localStorage
// until the server acknowledges it. After a reconnect the server's `welcome.acked_seq`
// says what it already counted: those are dropped, the rest are merged, renumbered and sent
// again, so a flaky connection never loses or doubles a like.

import { t, lang, initLang, applyI18n } from './i18n.js';
import { signupForm } from './signup-form.js';
import {
  local, session, randomId, CLIENT_ID, backoffDelay, formatNumber, formatCompact, api, socketUrl, el, icon,
} from './common.js';

/** Taps within this window go out as one message with a `count`. */
const FLUSH_MS = 250;
/** The server's largest `count` per message. */
const MAX_COUNT = 100;
/** Messages per second we allow ourselves; the server's default limit is 20/s, burst 40. */
const SEND_RATE = 10;
const SEND_BURST = 20;
/** Screen readers hear the changing count at most this often, once it held this long. */
const ANNOUNCE_EVERY_MS = 15000;
const ANNOUNCE_SETTLE_MS = 2000;
/** A ledger nobody has touched for this long belongs to a tab that is gone for good. */
const LEDGER_MAX_AGE_MS = 7 * 24 * 3600 * 1000;
/** Kinds with their own icon and label; any other kind gets a generic button. */
const KNOWN_KINDS = ['like', 'cheer', 'comment', 'share'];

const $ = (id) => document.getElementById(id);
const app = $('app');

const campaignId = decodeURIComponent(location.pathname.split('/').filter(Boolean)[1] || '');
const query = new URLSearchParams(location.search);
const joinToken = query.get('token') || '';
const region = /^[A-Za-z0-9-]{1,16}$/.test(query.get('region') || '') ? query.get('region') : '';

let viewer = '';
let ledger = null;
let campaign = null;
/** The latest stats object from the server. */
let stats = { viewers: 0, interactions: {} };
/** Counts acknowledged since the last stats frame, so the display does not dip meanwhile. */
let awaiting = {};
let awaitingTimer = null;
let tickMs = 1000;
/** loading | connecting | live | reconnecting | ended | missing | private */
let state = 'loading';
/** Why the page stopped, for the notice: ended | missing | private | expired | wrong_campaign */
let stopReason = '';

// ---------------------------------------------------------------------------------------
// Identity: a stable anonymous viewer id, and a session per tab.

function viewerId() {
  let v = local.get('livetally.viewer');
  if (!v || !CLIENT_ID.test(v)) {
    v = randomId(16);
    local.set('livetally.viewer', v);
  }
  return v;
}

const TAB_KEY = 'livetally.tab';
const ledgerPrefix = `livetally.s.${campaignId}.`;

/** Holds the Web Lock named after `tab` for the page's life; false if another tab has it. */
function lockTab(tab) {
  if (!navigator.locks) return Promise.resolve(true);
  return new Promise((resolve) => {
    navigator.locks
      .request(`livetally-tab-${tab}`, { ifAvailable: true }, (lock) => {
        resolve(Boolean(lock));
        return lock ? new Promise(() => {}) : undefined;
      })
      .catch(() => resolve(true));
  });
}

/**
 * The id of this tab. Kept in sessionStorage so a reload keeps its session, but a duplicated
 * tab (which copies sessionStorage) finds the id locked and takes a new one, so two tabs never
 * fight over one session. A new tab adopts the ledger of a closed one that still holds
 * unacknowledged taps, so those are delivered too.
 */
async function claimTab() {
  const mine = session.get(TAB_KEY);
  if (mine && CLIENT_ID.test(mine) && (await lockTab(mine))) return mine;
  const now = Date.now();
  for (const key of local.keys()) {
    if (!key.startsWith(ledgerPrefix)) continue;
    const saved = local.getJSON(key);
    const stale = !saved || now - (saved.t || 0) > LEDGER_MAX_AGE_MS;
    const empty = !saved || !Array.isArray(saved.pending) || saved.pending.length === 0;
    if (stale || (empty && now - (saved.t || 0) > 24 * 3600 * 1000)) {
      local.remove(key);
      continue;
    }
    const other = key.slice(ledgerPrefix.length);
    if (!empty && navigator.locks && CLIENT_ID.test(other) && (await lockTab(other))) {
      session.set(TAB_KEY, other);
      return other;
    }
  }
  const tab = randomId(12);
  await lockTab(tab);
  session.set(TAB_KEY, tab);
  return tab;
}

/**
 * The session's interactions that the server has not acknowledged yet, persisted on every
 * change. `sent` is the highest seq written to the current socket.
 */
class Ledger {
  constructor(key) {
    this.key = key;
    const saved = local.getJSON(key) || {};
    this.session = CLIENT_ID.test(saved.session || '') ? saved.session : randomId(16);
    this.acked = Number.isSafeInteger(saved.acked) && saved.acked >= 0 ? saved.acked : 0;
    this.pending = (Array.isArray(saved.pending) ? saved.pending : [])
      .filter((m) => Array.isArray(m) && Number.isSafeInteger(m[0]) && typeof m[1] === 'string'
        && Number.isInteger(m[2]) && m[2] >= 1 && m[2] <= MAX_COUNT)
      .map(([seq, kind, count]) => ({ seq, kind, count }));
    this.sent = this.acked;
    this.save();
  }

  nextSeq() {
    return this.pending.length ? this.pending[this.pending.length - 1].seq + 1 : this.acked + 1;
  }

  /** One tap: joins the last message if it is unsent, of the same kind and not full. */
  add(kind) {
    const last = this.pending[this.pending.length - 1];
    if (last && last.seq > this.sent && last.kind === kind && last.count < MAX_COUNT) last.count += 1;
    else this.pending.push({ seq: this.nextSeq(), kind, count: 1 });
    this.save();
  }

  /** A cumulative ack: returns the counts it settled, by kind. */
  ack(seq) {
    const settled = {};
    while (this.pending.length && this.pending[0].seq <= seq) {
      const m = this.pending.shift();
      settled[m.kind] = (settled[m.kind] || 0) + m.count;
    }
    if (seq > this.acked) this.acked = seq;
    this.save();
    return settled;
  }

  /**
   * After a welcome: everything up to `acked` is counted; everything after is not (a new
   * socket fences the old one's unflushed counts), so it is merged by kind into as few
   * messages as possible and renumbered from `acked + 1`. This also heals a server that
   * forgot the session (acked lower than ours): nothing pending was counted there either.
   */
  rebase(acked) {
    const totals = new Map();
    for (const m of this.pending) {
      if (m.seq > acked) totals.set(m.kind, (totals.get(m.kind) || 0) + m.count);
    }
    this.pending = [];
    let seq = acked;
    for (const [kind, total] of totals) {
      for (let left = total; left > 0; left -= MAX_COUNT) {
        this.pending.push({ seq: ++seq, kind, count: Math.min(left, MAX_COUNT) });
      }
    }
    this.acked = acked;
    this.sent = acked;
    this.save();
  }

  unsent() {
    return this.pending.filter((m) => m.seq > this.sent);
  }

  count(kind) {
    let n = 0;
    for (const m of this.pending) if (kind === undefined || m.kind === kind) n += m.count;
    return n;
  }

  /** The campaign is over: nothing pending can be counted any more. */
  clear() {
    this.pending = [];
    local.remove(this.key);
  }

  save() {
    if (state === 'ended') return;
    local.setJSON(this.key, {
      session: this.session,
      acked: this.acked,
      pending: this.pending.map((m) => [m.seq, m.kind, m.count]),
      t: Date.now(),
    });
  }
}

// ---------------------------------------------------------------------------------------
// The socket.

const conn = { ws: null, attempt: 0, timer: null, everLive: false, welcomed: false };

function isLive() {
  return state === 'live' && conn.ws && conn.ws.readyState === WebSocket.OPEN && conn.welcomed;
}

function stopped() {
  return state === 'ended' || state === 'missing' || state === 'private';
}

function connect() {
  clearTimeout(conn.timer);
  conn.timer = null;
  if (stopped()) return;
  if (conn.ws) {
    const old = conn.ws;
    conn.ws = null;
    old.close(1000, 'reconnecting');
  }
  setState(conn.everLive || conn.attempt > 0 ? 'reconnecting' : 'connecting');
  const url = socketUrl(`/ws/v1/campaigns/${encodeURIComponent(campaignId)}`, {
    viewer,
    session: ledger.session,
    region,
    token: joinToken,
  });
  let ws;
  try {
    ws = new WebSocket(url);
  } catch {
    scheduleReconnect(false);
    return;
  }
  conn.ws = ws;
  conn.welcomed = false;
  ws.onmessage = (ev) => {
    if (conn.ws !== ws || typeof ev.data !== 'string') return;
    let msg;
    try { msg = JSON.parse(ev.data); } catch { return; }
    onMessage(ws, msg);
  };
  ws.onclose = (ev) => {
    if (conn.ws !== ws) return;
    conn.ws = null;
    onClosed(ev.code, conn.welcomed);
  };
}

function onMessage(ws, msg) {
  switch (msg.type) {
    case 'welcome':
      conn.welcomed = true;
      conn.attempt = 0;
      conn.everLive = true;
      if (typeof msg.session === 'string' && CLIENT_ID.test(msg.session)) ledger.session = msg.session;
      if (Number.isFinite(msg.tick_ms) && msg.tick_ms > 0) tickMs = msg.tick_ms;
      ledger.rebase(Number(msg.acked_seq) || 0);
      awaiting = {};
      lastAnnounce = -Infinity;
      announced = null;
      if (msg.stats) stats = msg.stats;
      setState('live');
      render('maybe');
      flush();
      break;
    case 'stats':
      stats = msg;
      awaiting = {};
      render('maybe');
      break;
    case 'ack': {
      const settled = ledger.ack(Number(msg.seq) || 0);
      for (const [k, n] of Object.entries(settled)) awaiting[k] = (awaiting[k] || 0) + n;
      // Normally the next stats frame carries these; if nothing else changes it still comes
      // within a tick, so forget them a little after that either way.
      clearTimeout(awaitingTimer);
      awaitingTimer = setTimeout(() => { awaiting = {}; renderCounts(); }, tickMs * 2 + 1000);
      renderCounts();
      break;
    }
    case 'error':
      onServerError(ws, msg);
      break;
    default:
      break;
  }
}

/**
 * An `error` for one of our numbered messages means the server did not take that seq, so
 * the rest would be gaps. Resynchronise through a new socket: its welcome says exactly what
 * was counted. Being rate limited also halves our own rate.
 */
function onServerError(ws, msg) {
  const resync = ['rate_limited', 'store_unavailable', 'seq_gap'];
  if (!resync.includes(msg.code)) {
    console.warn('livetally: server refused a message', msg.code, msg.message);
    return;
  }
  if (msg.code === 'rate_limited') bucket.rate = Math.max(1, bucket.rate / 2);
  if (conn.ws === ws) {
    conn.ws = null;
    ws.close(1000, 'resync');
    conn.attempt = Math.max(conn.attempt, msg.code === 'store_unavailable' ? 2 : 1);
    scheduleReconnect(true);
  }
}

/** When this page's session was last taken over by another socket (close 4001). */
let lastResumedElsewhere = -Infinity;

async function onClosed(code, welcomed) {
  // Acknowledged taps not yet in a stats frame stay shown while the socket is down: no
  // frame can come until the next welcome, which carries totals that include them.
  clearTimeout(awaitingTimer);
  if (code === 4000) {
    showEnded();
    return;
  }
  if (code === 4001) {
    // Another socket resumed our session. Once is a race with our own previous socket;
    // twice in a row means another tab shares it (a browser without Web Locks let a
    // duplicated tab keep our id): this tab moves to a session of its own.
    const now = Date.now();
    if (now - lastResumedElsewhere < 30_000) {
      const tab = randomId(12);
      session.set(TAB_KEY, tab);
      const pending = ledger.pending;
      ledger = new Ledger(ledgerPrefix + tab);
      for (const m of pending) for (let i = 0; i < m.count; i++) ledger.add(m.kind);
      renderPending();
    }
    lastResumedElsewhere = now;
  }
  // A socket that never got its welcome was refused before the upgrade (404, 410, 401,
  // 403...), which a browser cannot see: ask the API what the campaign looks like now,
  // on the first failure and then every few attempts.
  if (!welcomed && (conn.attempt === 0 || conn.attempt % 4 === 3)) {
    const verdict = await checkCampaign();
    // Stopped, or "Retry now" / the network coming back opened a socket meanwhile.
    if (verdict || conn.ws) return;
  }
  scheduleReconnect(welcomed);
}

/** Decides from the API whether trying again makes sense; true when the page stopped. */
async function checkCampaign() {
  const r = await api(`/api/v1/campaigns/${encodeURIComponent(campaignId)}`);
  if (r.status === 404 && !conn.everLive) {
    stop('missing');
    return true;
  }
  if (r.ok && r.data) {
    campaign = r.data;
    if (campaign.state === 'ended') {
      if (campaign.stats) stats = campaign.stats;
      showEnded();
      return true;
    }
    const problem = inviteProblem();
    if (problem) {
      stop(problem);
      return true;
    }
  }
  return false;
}

function scheduleReconnect(wasLive) {
  if (stopped()) return;
  setState('reconnecting');
  const delay = wasLive && conn.attempt === 0 ? 100 + Math.random() * 900 : backoffDelay(conn.attempt);
  conn.attempt += 1;
  clearTimeout(conn.timer);
  if (navigator.onLine === false) {
    conn.timer = null; // the `online` event brings us back
    return;
  }
  conn.timer = setTimeout(connect, delay);
}

addEventListener('online', () => {
  if (state === 'reconnecting') {
    conn.attempt = 0;
    connect();
  }
});
addEventListener('offline', () => renderState());
document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'visible' && state === 'reconnecting' && conn.timer) connect();
});

// ---------------------------------------------------------------------------------------
// Sending: taps are batched per FLUSH_MS and paced by a token bucket.

const bucket = { tokens: SEND_BURST, at: performance.now(), rate: SEND_RATE };
let flushTimer = null;
let lastFlush = -Infinity;

function takeToken() {
  const now = performance.now();
  bucket.tokens = Math.min(SEND_BURST, bucket.tokens + ((now - bucket.at) / 1000) * bucket.rate);
  bucket.at = now;
  if (bucket.tokens < 1) return false;
  bucket.tokens -= 1;
  return true;
}

/** Sends now if the last flush was long enough ago, else at the end of the window. */
function scheduleFlush() {
  if (flushTimer) return;
  const wait = FLUSH_MS - (performance.now() - lastFlush);
  if (wait <= 0) flush();
  else flushTimer = setTimeout(() => { flushTimer = null; flush(); }, wait);
}

function flush() {
  lastFlush = performance.now();
  if (!isLive()) return;
  for (const m of ledger.unsent()) {
    if (!takeToken()) {
      clearTimeout(flushTimer);
      flushTimer = setTimeout(() => { flushTimer = null; flush(); }, Math.ceil(1000 / bucket.rate));
      break;
    }
    conn.ws.send(JSON.stringify({ type: 'interact', kind: m.kind, count: m.count, seq: m.seq }));
    ledger.sent = m.seq;
  }
  renderPending();
}

function tap(kind, button) {
  if (stopped() || !ledger) return;
  ledger.add(kind);
  renderCounts();
  if (button) feedback(button);
  scheduleFlush();
}

/** A bump of the button and a floating +1: the tap is acknowledged before the network is. */
function feedback(button) {
  button.classList.remove('bump');
  void button.offsetWidth; // restart the animation
  button.classList.add('bump');
  const plus = el('span', { class: 'float-plus', 'aria-hidden': 'true', text: '+1' });
  button.append(plus);
  plus.addEventListener('animationend', () => plus.remove());
  setTimeout(() => plus.remove(), 1200);
}

// ---------------------------------------------------------------------------------------
// Rendering.

function setState(next) {
  state = next;
  renderState();
}

function renderState() {
  app.dataset.state = state;
  $('conn').dataset.state = state;
  const offline = state === 'reconnecting' && navigator.onLine === false;
  $('conn-text').textContent = t(offline ? 'state_offline' : `state_${state}`);
  $('retry').hidden = state !== 'reconnecting';
  const disabled = stopped() || state === 'loading';
  for (const b of document.querySelectorAll('.reaction, #share-button')) b.disabled = disabled;
  $('signup').disabled = stopped() || state === 'loading';
}

function total(kind) {
  return ((stats.interactions && stats.interactions[kind]) || 0) + ledger.count(kind) + (awaiting[kind] || 0);
}

function renderCounts() {
  if (!ledger) return;
  for (const b of document.querySelectorAll('[data-kind]')) {
    const n = total(b.dataset.kind);
    b.dataset.count = String(n);
    const label = b.querySelector('.reaction-count');
    if (label) label.textContent = formatCompact(n, lang());
  }
  renderPending();
}

function renderPending() {
  app.dataset.pending = String(ledger ? ledger.count() : 0);
  app.dataset.acked = String(ledger ? ledger.acked : 0);
  if (ledger) app.dataset.session = ledger.session;
}

/** When the count was last announced, and what it was; reset by each welcome. */
let lastAnnounce = -Infinity;
let announced = null;
let announceTimer = null;

/**
 * The big number follows every frame. Screen readers hear it once it has settled for
 * ANNOUNCE_SETTLE_MS, at most every ANNOUNCE_EVERY_MS, and only when it changed; at once
 * when `announce` is 'force' (a language switch).
 */
function renderViewers(announce = 'no') {
  const n = stats.viewers || 0;
  const big = $('viewer-count');
  big.dataset.count = String(n);
  big.textContent = formatNumber(n, lang());
  if (announce === 'force') {
    clearTimeout(announceTimer);
    announceTimer = null;
    speakCount();
  } else if (announce === 'maybe' && !announceTimer) {
    const wait = Math.max(ANNOUNCE_SETTLE_MS, lastAnnounce + ANNOUNCE_EVERY_MS - Date.now());
    announceTimer = setTimeout(() => {
      announceTimer = null;
      if (state === 'live' && (stats.viewers || 0) !== announced) speakCount();
    }, wait);
  }
}

function speakCount() {
  announced = stats.viewers || 0;
  lastAnnounce = Date.now();
  $('count-announce').textContent = t('viewers_announce', { n: formatNumber(announced, lang()) });
}

function render(announce = 'no') {
  renderViewers(announce);
  renderCounts();
}

function kindLabel(kind) {
  return KNOWN_KINDS.includes(kind) ? t(`kind_${kind}`) : kind.replace(/_/g, ' ');
}

function buildButtons() {
  const grid = $('reaction-buttons');
  grid.replaceChildren();
  const kinds = campaign.kinds || [];
  for (const kind of kinds) {
    if (kind === 'share') continue;
    const button = el('button', { type: 'button', class: `reaction reaction-${KNOWN_KINDS.includes(kind) ? kind : 'other'}`,
      dataset: { kind, count: '0' } },
      icon(KNOWN_KINDS.includes(kind) ? kind : 'spark'),
      el('span', { class: 'reaction-label', text: kindLabel(kind) }),
      el('span', { class: 'reaction-count', text: '0' }));
    button.addEventListener('click', () => tap(kind, button));
    grid.append(button);
  }
  grid.dataset.n = String(grid.children.length);
  $('actions').hidden = grid.children.length === 0;
  $('share-panel').hidden = !kinds.includes('share');
  const shareIcon = document.querySelector('#share-button .share-icon');
  shareIcon.replaceChildren(icon('share'));
}

function renderLabels() {
  for (const b of document.querySelectorAll('.reaction')) {
    b.querySelector('.reaction-label').textContent = kindLabel(b.dataset.kind);
  }
}

/** The stream: a video element for files and HLS, an iframe for players, else a placeholder. */
function embedStream(url) {
  const box = $('stream');
  if (!url) return;
  let parsed;
  try { parsed = new URL(url); } catch { return; }
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') return;
  const isVideo = /\.(mp4|m3u8|webm)$/i.test(parsed.pathname);
  if (isVideo) {
    const video = el('video', { src: url, controls: true, playsinline: true, muted: true, autoplay: true,
      preload: 'metadata', 'aria-label': t('stream_label') });
    video.muted = true;
    video.addEventListener('error', () => {
      box.replaceChildren(el('div', { class: 'stream-placeholder' },
        el('p', { text: t('stream_unplayable') }),
        el('a', { href: url, target: '_blank', rel: 'noopener', class: 'button', text: t('stream_open') })));
    });
    box.replaceChildren(video);
  } else {
    box.replaceChildren(el('iframe', {
      src: url,
      title: t('stream_label'),
      allow: 'autoplay; fullscreen; picture-in-picture; encrypted-media',
      allowfullscreen: true,
      referrerpolicy: 'strict-origin-when-cross-origin',
      sandbox: 'allow-scripts allow-same-origin allow-presentation allow-popups',
    }));
  }
  box.classList.add('has-stream');
}

function renderNotice() {
  const box = $('notice');
  if (!stopReason) { box.hidden = true; return; }
  box.hidden = false;
  box.dataset.reason = stopReason;
  const peak = formatNumber(stats.peak_viewers || 0, lang());
  $('notice-title').textContent = t(`notice_${stopReason}_title`);
  $('notice-text').textContent = t(`notice_${stopReason}_text`, { peak });
}

function renderAll() {
  applyI18n();
  document.title = campaign && campaign.title ? `${campaign.title} · livetally` : 'livetally';
  renderLabels();
  renderState();
  renderViewers(state === 'live' ? 'force' : 'no');
  renderCounts();
  renderNotice();
  const status = $('signup-result').dataset.status;
  if (status) $('signup-result').textContent = t(`signup_${status}`);
}

function stop(reason) {
  stopReason = reason;
  clearTimeout(conn.timer);
  if (conn.ws) { const ws = conn.ws; conn.ws = null; ws.close(1000, 'stopped'); }
  setState(reason === 'expired' || reason === 'wrong_campaign' ? 'private' : reason);
  renderNotice();
}

function showEnded() {
  if (ledger) ledger.clear();
  stop('ended');
  stats = { ...stats, viewers: 0 };
  awaiting = {};
  render();
  // The frozen totals, for the notice and the buttons.
  api(`/api/v1/campaigns/${encodeURIComponent(campaignId)}/stats`).then((r) => {
    if (r.ok && r.data) {
      stats = r.data;
      render();
      renderNotice();
    }
  });
}

/** For `access:"token"` campaigns: what is wrong with the page's join token, if anything. */
function inviteProblem() {
  if (!campaign || campaign.access !== 'token') return '';
  if (!joinToken) return 'private';
  try {
    const b64 = joinToken.split('.')[0].replace(/-/g, '+').replace(/_/g, '/');
    const claims = JSON.parse(atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4)));
    if (claims.c && claims.c !== campaignId) return 'wrong_campaign';
    if (Number.isFinite(claims.exp) && claims.exp * 1000 <= Date.now()) return 'expired';
  } catch {
    return 'wrong_campaign';
  }
  return '';
}

// ---------------------------------------------------------------------------------------
// Share and sign-up.

async function share() {
  const channel = $('share-channel').value;
  const url = `${location.origin}/s/${encodeURIComponent(campaignId)}?via=${encodeURIComponent(channel)}`;
  const result = $('share-result');
  $('share-fallback').hidden = true;
  let done = false;
  if (navigator.share) {
    try {
      await navigator.share({ title: campaign ? campaign.title : 'livetally', url });
      result.textContent = t('share_done');
      done = true;
    } catch (e) {
      if (e && e.name === 'AbortError') return;
    }
  }
  if (!done) {
    try {
      await navigator.clipboard.writeText(url);
      result.textContent = t('share_copied');
    } catch {
      const input = $('share-url');
      input.value = url;
      $('share-fallback').hidden = false;
      input.focus();
      input.select();
      result.textContent = t('share_manual');
    }
  }
  tap('share', $('share-button'));
}

/** The sign-up form's fields (`signup-form.js`), once the campaign is loaded. */
let signup = { values: () => undefined, showError: () => false };

async function signUp() {
  const button = $('signup');
  const result = $('signup-result');
  button.disabled = true;
  result.dataset.status = 'busy';
  result.textContent = t('signup_busy');
  const fields = signup.values();
  if (fields === null) { button.disabled = false; result.dataset.status = ''; result.textContent = ''; return; }
  const q = joinToken ? `?token=${encodeURIComponent(joinToken)}` : '';
  const r = await api(`/api/v1/campaigns/${encodeURIComponent(campaignId)}/registrations${q}`, {
    method: 'POST',
    body: fields ? { viewer, fields } : { viewer },
  });
  if (r.status === 400 && signup.showError(r.error)) { button.disabled = false; result.dataset.status = ''; result.textContent = ''; return; }
  const status = r.status === 201 ? 'new' : r.status === 200 ? 'again' : r.status === 410 ? 'ended' : 'failed';
  result.dataset.status = status;
  result.dataset.http = String(r.status);
  result.textContent = t(`signup_${status}`);
  button.disabled = stopped();
  if (status === 'new' || status === 'again') local.set(`livetally.reg.${campaignId}`, '1');
  if (status === 'ended') showEnded();
}

// ---------------------------------------------------------------------------------------
// Start.

async function loadCampaign() {
  for (let attempt = 0; ; attempt++) {
    const r = await api(`/api/v1/campaigns/${encodeURIComponent(campaignId)}`);
    if (r.ok && r.data) return r.data;
    if (r.status === 404) return null;
    setState('reconnecting');
    await new Promise((resolve) => setTimeout(resolve, backoffDelay(attempt)));
  }
}

async function start() {
  initLang($('lang'), renderAll);
  renderState();
  $('retry').addEventListener('click', () => { conn.attempt = 0; connect(); });
  $('share-button').addEventListener('click', share);
  $('signup').addEventListener('click', signUp);
  if (!/^[a-z0-9][a-z0-9-]{0,62}$/.test(campaignId)) {
    stop('missing');
    return;
  }
  viewer = viewerId();
  ledger = new Ledger(ledgerPrefix + (await claimTab()));
  renderPending();
  campaign = await loadCampaign();
  if (!campaign) {
    stop('missing');
    return;
  }
  if (campaign.stats) stats = campaign.stats;
  $('title').textContent = campaign.title;
  document.title = `${campaign.title} · livetally`;
  embedStream(campaign.stream_url);
  buildButtons();
  signup = signupForm($('signup-panel'), $('signup'), campaign.registration_fields);
  if (local.get(`livetally.reg.${campaignId}`)) {
    $('signup-result').dataset.status = 'again';
    $('signup-result').textContent = t('signup_again');
  }
  render();
  if (campaign.state === 'ended') {
    showEnded();
    return;
  }
  const problem = inviteProblem();
  if (problem) {
    stop(problem);
    return;
  }
  setState('connecting');
  connect();
}

start();
