// The viewer page, /c/{id}: the stream, the live count, reactions and sign-up.
//
// Loading the campaign, the socket, the ledger of unacknowledged taps, reconnecting, tabs,
// the page's state and the totals it shows are the SDK's `liveView` (sdk/livetally.js,
// served to this page as ./livetally.js), as for <livetally-widget>: this page renders
// what it reports and turns taps into `interact()` calls.

import { liveView } from './livetally.js';
import { t, lang, initLang, applyI18n } from './i18n.js';
import { local, formatNumber, formatCompact, el, icon } from './common.js';
import { signupForm } from './signup-form.js';

/** Screen readers hear the changing count at most this often, once it held this long. */
const ANNOUNCE_EVERY_MS = 15000;
const ANNOUNCE_SETTLE_MS = 2000;
/** Kinds with their own icon and label; any other kind gets a generic button. */
const KNOWN_KINDS = ['like', 'cheer', 'comment', 'share'];

const $ = (id) => document.getElementById(id);
const app = $('app');

const campaignId = decodeURIComponent(location.pathname.split('/').filter(Boolean)[1] || '');
const query = new URLSearchParams(location.search);
const joinToken = query.get('token') || '';
const region = /^[A-Za-z0-9-]{1,16}$/.test(query.get('region') || '') ? query.get('region') : '';
/** The viewer's unit of the campaign's org, passed on to the socket (a malformed one is dropped). */
const unit = /^[A-Za-z0-9_-]{1,32}$/.test(query.get('unit') || '') ? query.get('unit') : '';

/** The campaign, its state and its counts; see `start()`. */
let view = null;
let campaign = null;
/** loading | connecting | live | reconnecting | ended | missing | private */
let state = 'loading';
/** Why the page stopped, for the notice: ended | missing | private | expired | wrong_campaign */
let stopReason = '';

// ---------------------------------------------------------------------------------------
// The campaign, through the SDK.

function follow() {
  view = liveView({ campaign: campaignId, token: joinToken || undefined, region: region || undefined, unit: unit || undefined });
  view.on('campaign', showCampaign);
  view.on('state', onViewState);
  view.on('welcome', () => {
    lastAnnounce = -Infinity;
    announced = null;
    renderPending();
  });
  view.on('stats', () => {
    render(state === 'live' ? 'maybe' : 'no');
    if (stopReason) renderNotice(); // the final totals of an ended campaign
  });
  view.on('counts', () => renderCounts());
  view.on('unit', () => renderBranch());
  view.on('error', (e) => {
    if (!e.fatal) console.warn('livetally:', e.code, e.message);
  });
}

function onViewState(s) {
  if (view.reason) {
    // Stopped: the notice says why. (This page has no "disconnected" notice: the only
    // other fatal refusals are for sessions a page picks itself, which this one does not.)
    stopReason = view.reason === 'closed' ? 'missing' : view.reason;
    setState({ expired: 'private', closed: 'missing' }[s] || s);
    renderNotice();
    if (s === 'ended') render();
    return;
  }
  setState(s);
  if (s === 'live') render('maybe');
}

function stopped() {
  return state === 'ended' || state === 'missing' || state === 'private';
}

function tap(kind, button) {
  if (stopped() || !view || !view.tappable) return;
  view.interact(kind).catch(() => { /* ended or refused: the state says so */ });
  renderCounts();
  if (button) feedback(button);
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
  const offline = state === 'reconnecting' && view !== null && view.offline;
  $('conn-text').textContent = t(offline ? 'state_offline' : `state_${state}`);
  $('retry').hidden = state !== 'reconnecting';
  const disabled = stopped() || state === 'loading';
  for (const b of document.querySelectorAll('.reaction, #share-button')) b.disabled = disabled;
  $('signup').disabled = stopped() || state === 'loading';
}

function renderCounts() {
  for (const b of document.querySelectorAll('[data-kind]')) {
    const n = view ? view.total(b.dataset.kind) : 0;
    b.dataset.count = String(n);
    const label = b.querySelector('.reaction-count');
    if (label) label.textContent = formatCompact(n, lang());
  }
  renderPending();
}

function renderPending() {
  const client = view && view.client;
  app.dataset.pending = String(client ? client.pending() : 0);
  app.dataset.acked = String(client ? client.acked : 0);
  if (client && client.session) app.dataset.session = client.session;
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
  const n = viewers();
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
      if (state === 'live' && viewers() !== announced) speakCount();
    }, wait);
  }
}

function viewers() {
  return (view && view.stats.viewers) || 0;
}

function speakCount() {
  announced = viewers();
  lastAnnounce = Date.now();
  $('count-announce').textContent = t('viewers_announce', { n: formatNumber(announced, lang()) });
}

function render(announce = 'no') {
  renderViewers(announce);
  renderCounts();
  renderBranch();
}

/**
 * The viewer's branch, from the node's `unit` frame: the deepest unit counted live and how
 * many watch there ("Guangdong · 120,345 watching"), the whole path in the tooltip.
 */
function renderBranch() {
  const box = $('branch');
  const path = view && view.branch;
  const last = path && path.length ? path[path.length - 1] : null;
  box.hidden = !last;
  if (!last) return;
  box.textContent = t('branch_watching', { name: last.name, n: formatNumber(last.viewers || 0, lang()) });
  box.title = t('branch_label', { path: path.map((u) => u.name).join(' › ') });
  box.dataset.unit = last.code;
  box.dataset.viewers = String(last.viewers || 0);
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
  const peak = formatNumber((view && view.stats.peak_viewers) || 0, lang());
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
  renderBranch();
  renderNotice();
  const status = $('signup-result').dataset.status;
  if (status) $('signup-result').textContent = t(`signup_${status}`);
}


// ---------------------------------------------------------------------------------------
// Share and sign-up.

async function share() {
  const channel = $('share-channel').value;
  // The share visit counts for the sharer's unit, and the link keeps it for who follows it.
  const unitQuery = unit ? `&unit=${encodeURIComponent(unit)}` : '';
  const url = `${location.origin}/s/${encodeURIComponent(campaignId)}?via=${encodeURIComponent(channel)}${unitQuery}`;
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
  const client = view && view.client;
  if (!client) return;
  const button = $('signup');
  const result = $('signup-result');
  button.disabled = true;
  result.dataset.status = 'busy';
  result.textContent = t('signup_busy');
  const fields = signup.values();
  if (fields === null) { button.disabled = false; result.dataset.status = ''; result.textContent = ''; return; }
  let status;
  let http;
  try {
    const r = await client.register(fields);
    status = r.created ? 'new' : 'again';
    http = r.status;
  } catch (e) {
    if (e.status === 400 && signup.showError({ code: e.code, message: e.message, field: e.field })) {
      button.disabled = false; result.dataset.status = ''; result.textContent = ''; return;
    }
    status = e.code === 'campaign_ended' ? 'ended' : 'failed';
    http = e.status ?? 0;
  }
  result.dataset.status = status;
  result.dataset.http = String(http);
  result.textContent = t(`signup_${status}`);
  button.disabled = stopped();
  if (status === 'new' || status === 'again') local.set(`livetally.reg.${campaignId}`, '1');
  if (status === 'ended') view.ended();
}

// ---------------------------------------------------------------------------------------
// Start.

/** The campaign is known: its title, stream, buttons and sign-up form. */
function showCampaign(c) {
  campaign = c;
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
}

function start() {
  initLang($('lang'), renderAll);
  renderState();
  $('retry').addEventListener('click', () => { if (view && view.client) view.client.reconnect(); });
  $('share-button').addEventListener('click', share);
  $('signup').addEventListener('click', signUp);
  follow();
}

start();
