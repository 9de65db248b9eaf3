// <livetally-widget>: a campaign's live viewer count and reaction buttons, for a page on
// any origin. A node serves this module at /embed/v1.js; it imports the SDK from the same
// node, relative to its own URL, so a brand's page needs two lines:
//
//   <script type="module" src="https://NODE/embed/v1.js"></script>
//   <livetally-widget campaign="launch-2026"></livetally-widget>
//
// Attributes: campaign (required), base (the node; default: where this module came from),
// kinds ("like,cheer"; default: the campaign's kinds but `share`), lang (en | zh-CN;
// default: the page's), token (a join token, for access:"token" campaigns), region.
// Everything is inside a Shadow DOM: the page's CSS cannot break it, and it themes it only
// through --lt-accent, --lt-bg, --lt-fg, --lt-radius and --lt-font. docs/embedding.md.
//
// The SDK owns the socket, the ledger of unacknowledged taps (kept across reloads) and
// exactly-once delivery; the widget shows counts that include the viewer's own taps at once.

import { backoffDelay, connect, tokenClaims } from '../sdk/v1/livetally.js';

/** Screen readers hear the viewer count once it held this long, at most this often. */
const ANNOUNCE_SETTLE_MS = 2000;
const ANNOUNCE_EVERY_MS = 15000;
/** Kinds with their own icon and name; any other kind gets the generic one. */
const KNOWN_KINDS = ['like', 'cheer', 'comment', 'share'];
const CAMPAIGN_ID = /^[a-z0-9][a-z0-9-]{0,62}$/;
const KIND = /^[a-z][a-z0-9_]{0,31}$/;

const STRINGS = {
  en: {
    watching: 'watching now',
    watching_announce: '{n} watching now',
    peak: 'watched at the peak',
    reactions: 'Reactions',
    widget_label: 'Live audience: {title}',
    state_loading: 'Loading…',
    state_connecting: 'Connecting…',
    state_live: 'Live',
    state_reconnecting: 'Reconnecting…',
    state_offline: 'Offline: your taps are kept',
    state_ended: 'Event ended',
    state_missing: 'Event not found',
    state_private: 'Invite needed',
    state_expired: 'Invite expired',
    state_closed: 'Disconnected',
    kind_like: 'Like',
    kind_cheer: 'Cheer',
    kind_comment: 'Comment',
    kind_share: 'Share',
  },
  'zh-CN': {
    watching: '人正在观看',
    watching_announce: '{n} 人正在观看',
    peak: '人在高峰时观看',
    reactions: '互动',
    widget_label: '实时观众：{title}',
    state_loading: '加载中…',
    state_connecting: '连接中…',
    state_live: '直播中',
    state_reconnecting: '重新连接中…',
    state_offline: '网络已断开，点赞会保留',
    state_ended: '活动已结束',
    state_missing: '未找到活动',
    state_private: '需要邀请',
    state_expired: '邀请已过期',
    state_closed: '已断开',
    kind_like: '点赞',
    kind_cheer: '喝彩',
    kind_comment: '评论',
    kind_share: '分享',
  },
};

/** 24×24 icons, filled with the button's colour. */
const ICON_PATHS = {
  like: 'M12 20.5C8.3 17.9 3 13.9 3 9.1 3 6.3 5.1 4.2 7.7 4.2c1.8 0 3.3 1 4.3 2.5 1-1.5 2.5-2.5 4.3-2.5 2.6 0 4.7 2.1 4.7 4.9 0 4.8-5.3 8.8-9 11.4z',
  cheer: 'M12 2.5l2.6 6.3 6.8.5-5.2 4.4 1.6 6.6L12 16.7l-5.8 3.6 1.6-6.6-5.2-4.4 6.8-.5z',
  comment: 'M5 4h14a2 2 0 0 1 2 2v9a2 2 0 0 1-2 2h-8l-5 4v-4H5a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2z',
  share: 'M12 2.8l5.2 5.2h-3.4v6.4h-3.6V8H6.8zM4 13h2.5v5.5h11V13H20v8H4z',
  other: 'M12 3l1.9 6.1L20 12l-6.1 1.9L12 20l-1.9-6.1L4 12l6.1-2.9z',
};

const STYLE = `
:host {
  --_accent: var(--lt-accent, #5b4bdb);
  --_bg: var(--lt-bg, Canvas);
  --_fg: var(--lt-fg, CanvasText);
  --_radius: var(--lt-radius, 12px);
  --_muted: color-mix(in srgb, var(--_fg) 62%, var(--_bg));
  --_line: color-mix(in srgb, var(--_fg) 16%, var(--_bg));
  display: block;
  container-type: inline-size;
  font-family: var(--lt-font, system-ui, -apple-system, "Segoe UI", Roboto, "PingFang SC", "Noto Sans CJK SC", "Microsoft YaHei", sans-serif);
  color: var(--_fg);
  -webkit-tap-highlight-color: transparent;
}
:host([hidden]) { display: none; }
* { box-sizing: border-box; }
.card {
  background: var(--_bg); color: var(--_fg); border: 1px solid var(--_line);
  border-radius: var(--_radius); padding: 0.9rem; display: grid; gap: 0.75rem;
}
.head { display: flex; align-items: baseline; justify-content: space-between; gap: 0.75rem; flex-wrap: wrap; }
.viewers { margin: 0; display: flex; align-items: baseline; gap: 0.4rem; flex-wrap: wrap; }
.viewers .n { font-size: 2rem; font-weight: 800; line-height: 1.1; font-variant-numeric: tabular-nums; }
.viewers .label { color: var(--_muted); }
.status { display: inline-flex; align-items: center; gap: 0.4rem; font-size: 0.85rem; font-weight: 600; color: var(--_muted); }
.dot { width: 0.55rem; height: 0.55rem; border-radius: 50%; background: currentColor; flex: none; }
/* Status colours mixed toward the text colour: darker on light cards, lighter on dark ones,
   so they keep their contrast either way. */
.card[data-state="live"] .status { color: color-mix(in srgb, #1f9d55 70%, var(--_fg)); }
.card[data-state="live"] .dot { animation: pulse 2s ease-in-out infinite; }
.card[data-state="connecting"] .status, .card[data-state="reconnecting"] .status { color: color-mix(in srgb, #c27c0e 70%, var(--_fg)); }
.buttons { display: flex; flex-wrap: wrap; gap: 0.5rem; }
.buttons:empty, .card[data-state="missing"] .buttons, .card[data-state="private"] .buttons { display: none; }
button {
  flex: 1 1 6.5rem; min-height: 48px; position: relative;
  display: inline-flex; align-items: center; justify-content: center; gap: 0.4rem;
  padding: 0.5rem 0.75rem; font: inherit; font-weight: 600; cursor: pointer;
  color: var(--_fg); background: color-mix(in srgb, var(--_accent) 9%, var(--_bg));
  border: 1px solid color-mix(in srgb, var(--_accent) 40%, var(--_bg)); border-radius: var(--_radius);
  touch-action: manipulation; user-select: none; -webkit-user-select: none;
}
button:hover:not(:disabled) { background: color-mix(in srgb, var(--_accent) 16%, var(--_bg)); }
button:active:not(:disabled) { transform: scale(0.96); }
button:focus-visible { outline: 3px solid var(--_accent); outline-offset: 2px; }
button:disabled { opacity: 0.55; cursor: not-allowed; }
svg { width: 1.4rem; height: 1.4rem; fill: var(--_accent); flex: none; }
.count { font-variant-numeric: tabular-nums; color: var(--_muted); font-weight: 500; }
button.bump svg { animation: bump 0.3s ease-out; }
.plus { position: absolute; top: 0.1rem; right: 0.5rem; font-size: 0.85rem; font-weight: 800; color: var(--_accent);
  pointer-events: none; animation: rise 0.8s ease-out forwards; }
.sr-only { position: absolute; width: 1px; height: 1px; margin: -1px; padding: 0; overflow: hidden;
  clip: rect(0 0 0 0); white-space: nowrap; border: 0; }
@container (min-width: 28rem) { .viewers .n { font-size: 2.4rem; } }
@keyframes pulse { 50% { opacity: 0.35; } }
@keyframes bump { 40% { transform: scale(1.3); } }
@keyframes rise { to { transform: translateY(-1rem); opacity: 0; } }
@media (prefers-reduced-motion: reduce) { * { animation: none !important; transition: none !important; } }
@media (forced-colors: active) { button { border-color: ButtonText; } svg { fill: ButtonText; } }
`;

/**
 * A constructed stylesheet, shared by every widget on the page. A brand's CSP without
 * `style-src 'unsafe-inline'` blocks a `<style>` element in a shadow root but not this;
 * browsers without constructable stylesheets get the element.
 */
let sheet = null;
function adoptStyle(root) {
  try {
    if (!sheet) {
      sheet = new CSSStyleSheet();
      sheet.replaceSync(STYLE);
    }
    root.adoptedStyleSheets = [sheet];
  } catch {
    root.prepend(node('style', { text: STYLE }));
  }
}

/** `en` or `zh-CN`, from a language tag (the attribute, the page's, the browser's). */
function pickLang(tag) {
  return /^zh\b/i.test(tag || '') ? 'zh-CN' : 'en';
}

function fill(text, vars) {
  return text.replace(/\{(\w+)\}/g, (_, k) => (k in vars ? vars[k] : ''));
}

/** Exact below 10,000, then `1.2万` / `12K`: room for a button. */
function formatCount(n, lang, compact) {
  const big = compact && n >= 10000;
  return new Intl.NumberFormat(lang, big ? { notation: 'compact', maximumFractionDigits: 1 } : {}).format(n);
}

function svgIcon(kind) {
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('focusable', 'false');
  const path = document.createElementNS(ns, 'path');
  path.setAttribute('d', ICON_PATHS[KNOWN_KINDS.includes(kind) ? kind : 'other']);
  svg.append(path);
  return svg;
}

function node(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'text') e.textContent = v;
    else e.setAttribute(k, v);
  }
  e.append(...children);
  return e;
}

/** States in which a tap is taken: the SDK keeps it until the node acknowledges it. */
const TAPPABLE = ['connecting', 'live', 'reconnecting'];

let widgetSeq = 0;

export class LivetallyWidget extends HTMLElement {
  static get observedAttributes() {
    return ['campaign', 'base', 'token', 'region', 'kinds', 'lang'];
  }

  #root;
  #els;
  /** Bumped by every (re)start: callbacks of an older start see it changed and stop. */
  #run = 0;
  #connected = false;
  #client = null;
  #campaign = null;
  /** loading | connecting | live | reconnecting | ended | missing | private | expired | closed */
  #state = 'loading';
  #offline = false;
  #viewer = '';
  #stats = { viewers: 0, peak_viewers: 0, interactions: {} };
  /**
   * The highest total seen per kind. A campaign's totals never go down, but a frame can be
   * older than one already shown: the welcome of a node that has not read the store yet
   * (zeros), or a node a tick behind the one before a reconnect.
   */
  #highest = {};
  /** Acknowledged taps by kind that no stats frame carried yet, so counts do not dip meanwhile. */
  #awaiting = {};
  #awaitingTimer = null;
  #announced = null;
  #lastAnnounce = -Infinity;
  #announceTimer = null;
  #onNetwork = () => {
    this.#offline = navigator.onLine === false;
    this.#render();
  };

  constructor() {
    super();
    this.#root = this.attachShadow({ mode: 'open' });
    const id = `lt${++widgetSeq}`;
    const els = {
      card: node('section', { class: 'card', part: 'card', 'data-state': 'loading' }),
      status: node('span', { class: 'status', role: 'status', part: 'status' }),
      stateText: node('span', { class: 'state-text' }),
      n: node('span', { class: 'n', part: 'count', text: '0' }),
      label: node('span', { class: 'label' }),
      announce: node('p', { class: 'sr-only', 'aria-live': 'polite' }),
      buttons: node('div', { class: 'buttons', role: 'group', part: 'buttons' }),
    };
    els.status.append(node('span', { class: 'dot', 'aria-hidden': 'true' }), els.stateText);
    els.card.append(
      node('div', { class: 'head' }, node('p', { class: 'viewers' }, els.n, els.label), els.status),
      els.announce,
      els.buttons,
    );
    this.#root.append(els.card);
    adoptStyle(this.#root);
    this.#els = { ...els, id };
  }

  // -- What the page can read ------------------------------------------------------------

  /** loading | connecting | live | reconnecting | ended | missing | private | expired | closed */
  get state() { return this.#state; }
  /** The number shown: viewers now (the peak once the campaign ended). */
  get viewers() { return this.#shownViewers(); }
  /** This viewer's taps the node has not acknowledged yet (they are kept until it does). */
  get pending() { return this.#client ? this.#client.pending() : 0; }
  /** The viewer id the node admitted (a token's `sub` when it has one); '' before that. */
  get viewer() { return this.#viewer; }
  /** The SDK client behind the widget (`register()`, events), or null before it connects. */
  get client() { return this.#client; }

  // -- Lifecycle ---------------------------------------------------------------------------

  connectedCallback() {
    this.#connected = true;
    addEventListener('online', this.#onNetwork);
    addEventListener('offline', this.#onNetwork);
    this.#start();
  }

  disconnectedCallback() {
    this.#connected = false;
    removeEventListener('online', this.#onNetwork);
    removeEventListener('offline', this.#onNetwork);
    this.#stop();
  }

  /**
   * Only changes after connectedCallback: an element upgraded in a parsed page first hears
   * each of its attributes, and connectedCallback starts once for all of them.
   */
  attributeChangedCallback(name, before, after) {
    if (before === after || !this.#connected) return;
    if (name === 'lang') this.#render();
    else if (name === 'kinds') this.#buildButtons();
    else this.#start();
  }

  get #lang() {
    return pickLang(this.getAttribute('lang') || this.closest('[lang]')?.getAttribute('lang') || navigator.language);
  }

  #t(key, vars = {}) {
    return fill(STRINGS[this.#lang][key] ?? STRINGS.en[key], vars);
  }

  /** The node: the `base` attribute, else the node this module was loaded from. */
  get #base() {
    const given = this.getAttribute('base');
    return (given || new URL('..', import.meta.url).href).replace(/\/+$/, '');
  }

  #api(path) {
    const id = encodeURIComponent(this.getAttribute('campaign') || '');
    return fetch(`${this.#base}/api/v1/campaigns/${id}${path}`, { credentials: 'omit', cache: 'no-store' });
  }

  /** Closes the client; what it holds unacknowledged stays stored for the next page. */
  #stop() {
    this.#run += 1;
    clearTimeout(this.#awaitingTimer);
    clearTimeout(this.#announceTimer);
    this.#announceTimer = null;
    if (this.#client) this.#client.close();
    this.#client = null;
  }

  async #start() {
    this.#stop();
    const run = this.#run;
    this.#campaign = null;
    this.#viewer = '';
    this.#offline = navigator.onLine === false;
    this.#stats = { viewers: 0, peak_viewers: 0, interactions: {} };
    this.#highest = {};
    this.#awaiting = {};
    this.#buildButtons();
    this.#setState('loading');
    if (!CAMPAIGN_ID.test(this.getAttribute('campaign') || '')) {
      this.#setState('missing');
      return;
    }
    const campaign = await this.#loadCampaign(run);
    if (run !== this.#run) return;
    if (!campaign) {
      this.#setState('missing');
      return;
    }
    this.#campaign = campaign;
    if (campaign.stats) this.#absorb(campaign.stats);
    this.#buildButtons();
    if (campaign.state === 'ended') {
      this.#ended();
      return;
    }
    const problem = this.#inviteProblem();
    if (problem) {
      this.#setState(problem);
      return;
    }
    this.#setState('connecting');
    this.#open(run);
  }

  /** The campaign object, retried while the node is unreachable; null when there is none. */
  async #loadCampaign(run) {
    for (let attempt = 0; run === this.#run; attempt++) {
      try {
        const r = await this.#api('');
        if (r.ok) return await r.json();
        if (r.status === 404) return null;
      } catch {
        // Unreachable: try again below.
      }
      if (run !== this.#run) return null;
      if (attempt > 0) this.#setState('reconnecting');
      // The SDK's jittered backoff (0.5 s doubling to 20 s), so reloads do not retry in step.
      await new Promise((resolve) => setTimeout(resolve, backoffDelay(attempt)));
    }
    return null;
  }

  /** For a private campaign: why the widget cannot join, or '' when it may try. */
  #inviteProblem() {
    if (this.#campaign.access !== 'token') return '';
    const token = this.getAttribute('token');
    const claims = token ? tokenClaims(token) : null;
    if (!claims || claims.campaign !== this.#campaign.id) return 'private';
    if (Number.isFinite(claims.exp) && claims.exp * 1000 <= Date.now()) return 'expired';
    return '';
  }

  #open(run) {
    const options = { base: this.#base, campaign: this.#campaign.id };
    for (const name of ['token', 'region']) {
      const v = this.getAttribute(name);
      if (v) options[name] = v;
    }
    let client;
    try {
      client = connect(options);
    } catch (e) {
      // A malformed attribute (`region`, `base`): nothing to connect with.
      console.warn('livetally-widget:', e.message);
      this.#setState('closed');
      return;
    }
    this.#client = client;
    const current = (fn) => (...args) => {
      if (run === this.#run) fn(...args);
    };
    client.on('welcome', current((w) => {
      this.#viewer = w.viewer || '';
      this.#announced = null;
      this.#lastAnnounce = -Infinity;
    }));
    client.on('stats', current((s) => {
      this.#absorb(s);
      this.#awaiting = {};
      this.#render('maybe');
    }));
    client.on('ack', current(({ settled }) => {
      for (const [kind, n] of Object.entries(settled || {})) this.#awaiting[kind] = (this.#awaiting[kind] || 0) + n;
      // The next stats frame carries these; forget them a little after it is due.
      clearTimeout(this.#awaitingTimer);
      this.#awaitingTimer = setTimeout(() => {
        this.#awaiting = {};
        this.#renderCounts();
      }, client.tickMs * 2 + 1000);
      this.#renderCounts();
    }));
    client.on('pending', current(() => this.#renderCounts()));
    client.on('state', current((state, info = {}) => {
      this.#offline = Boolean(info.offline);
      if (state === 'open') this.#setState('live');
      else if (state === 'ended') this.#ended();
      // Down, and the SDK tries again: "connecting" until the first welcome, then "reconnecting".
      else if (!info.final) this.#setState(this.#state === 'connecting' ? 'connecting' : 'reconnecting');
    }));
    client.on('error', current((e) => {
      if (!e.fatal) return;
      const why = { not_found: 'missing', token_required: 'private', token_invalid: 'private', token_expired: 'expired' };
      this.#setState(why[e.code] || 'closed');
    }));
  }

  /** The campaign is over: the final totals; nothing unacknowledged can count any more. */
  #ended() {
    const wasEnded = this.#state === 'ended';
    this.#awaiting = {};
    this.#setState('ended');
    if (wasEnded || !this.#campaign) return;
    const run = this.#run;
    this.#api('/stats')
      .then((r) => (r.ok ? r.json() : null))
      .then((s) => {
        if (s && run === this.#run) {
          this.#absorb(s);
          this.#render();
        }
      })
      .catch(() => {});
  }

  // -- Taps --------------------------------------------------------------------------------

  /** One tap: the SDK stores it at once, batches it with its neighbours and sends it. */
  #tap(kind, button) {
    if (!this.#client || !TAPPABLE.includes(this.#state)) return;
    this.#client.interact(kind, 1).catch(() => {
      // Not counted: the campaign ended (the state says so) or the widget was closed.
    });
    this.#feedback(button);
    this.#renderCounts();
  }

  /** A bump and a floating +1: the tap is seen before the network has it. */
  #feedback(button) {
    button.classList.remove('bump');
    void button.offsetWidth; // restarts the animation
    button.classList.add('bump');
    const plus = node('span', { class: 'plus', 'aria-hidden': 'true', text: '+1' });
    button.append(plus);
    plus.addEventListener('animationend', () => plus.remove());
    setTimeout(() => plus.remove(), 1200);
  }

  // -- Rendering ---------------------------------------------------------------------------

  /** The kinds to show: the `kinds` attribute (those the campaign has), else the campaign's but `share`. */
  #kinds() {
    const have = (this.#campaign && this.#campaign.kinds) || [];
    const asked = (this.getAttribute('kinds') || '').split(',').map((k) => k.trim()).filter((k) => KIND.test(k));
    if (asked.length) return [...new Set(asked)].filter((k) => have.includes(k));
    return have.filter((k) => k !== 'share');
  }

  #buildButtons() {
    const { buttons, id } = this.#els;
    buttons.replaceChildren();
    for (const kind of this.#kinds()) {
      const label = node('span', { class: 'name', id: `${id}-${kind}-name` });
      const count = node('span', { class: 'count', id: `${id}-${kind}-count`, text: '0' });
      const button = node('button', {
        type: 'button',
        part: 'button',
        'data-kind': kind,
        'aria-labelledby': label.id,
        'aria-describedby': count.id,
      }, svgIcon(kind), label, count);
      button.addEventListener('click', () => this.#tap(kind, button));
      buttons.append(button);
    }
    this.#render();
  }

  #absorb(stats) {
    this.#stats = stats;
    for (const [kind, n] of Object.entries(stats.interactions || {})) {
      if (!(n <= this.#highest[kind])) this.#highest[kind] = n;
    }
  }

  #shownViewers() {
    return (this.#state === 'ended' ? this.#stats.peak_viewers : this.#stats.viewers) || 0;
  }

  #kindName(kind) {
    return KNOWN_KINDS.includes(kind) ? this.#t(`kind_${kind}`) : kind.replace(/_/g, ' ');
  }

  #setState(state) {
    const changed = state !== this.#state;
    this.#state = state;
    this.#render();
    if (changed) {
      this.dispatchEvent(new CustomEvent('livetally-state', { detail: { state }, bubbles: true, composed: true }));
    }
  }

  #render(announce = 'no') {
    const { card, stateText, n, label, buttons, announce: live } = this.#els;
    const lang = this.#lang;
    card.setAttribute('lang', lang);
    card.dataset.state = this.#state;
    this.dataset.state = this.#state;
    const title = this.#campaign ? this.#campaign.title : this.getAttribute('campaign') || '';
    card.setAttribute('aria-label', this.#t('widget_label', { title }));
    buttons.setAttribute('aria-label', this.#t('reactions'));
    const offline = this.#state !== 'live' && TAPPABLE.includes(this.#state) && this.#offline;
    card.dataset.offline = String(offline);
    stateText.textContent = this.#t(offline ? 'state_offline' : `state_${this.#state}`);
    const ended = this.#state === 'ended';
    const shown = this.#shownViewers();
    n.textContent = formatCount(shown, lang, false);
    this.dataset.viewers = String(shown);
    label.textContent = this.#t(ended ? 'peak' : 'watching');
    for (const b of buttons.children) {
      b.querySelector('.name').textContent = this.#kindName(b.dataset.kind);
      b.disabled = !TAPPABLE.includes(this.#state);
    }
    this.#renderCounts();
    if (announce === 'maybe' && this.#state === 'live') this.#scheduleAnnounce(live);
  }

  #renderCounts() {
    const lang = this.#lang;
    const totals = this.#highest;
    for (const b of this.#els.buttons.children) {
      const kind = b.dataset.kind;
      const mine = this.#client ? this.#client.pending(kind) : 0;
      const total = (totals[kind] || 0) + mine + (this.#awaiting[kind] || 0);
      b.dataset.count = String(total);
      b.querySelector('.count').textContent = formatCount(total, lang, true);
    }
    this.dataset.pending = String(this.pending);
  }

  /**
   * The big number follows every frame; screen readers hear it politely, once it settled,
   * at most every ANNOUNCE_EVERY_MS, and only when it changed.
   */
  #scheduleAnnounce(live) {
    if (this.#announceTimer) return;
    const wait = Math.max(ANNOUNCE_SETTLE_MS, this.#lastAnnounce + ANNOUNCE_EVERY_MS - Date.now());
    const run = this.#run;
    this.#announceTimer = setTimeout(() => {
      this.#announceTimer = null;
      const now = this.#stats.viewers || 0;
      if (run !== this.#run || this.#state !== 'live' || now === this.#announced) return;
      this.#announced = now;
      this.#lastAnnounce = Date.now();
      live.textContent = this.#t('watching_announce', { n: formatCount(now, this.#lang, false) });
    }, wait);
  }
}

if (!customElements.get('livetally-widget')) customElements.define('livetally-widget', LivetallyWidget);
