// <livetally-widget>: a campaign's live viewer count and reaction buttons, for a page on
// any origin. A node serves this module at /embed/v1.js; it imports the SDK from the same
// node, relative to its own URL, so a brand's page needs two lines:
//
//   <script type="module" src="https://NODE/embed/v1.js"></script>
//   <livetally-widget campaign="launch-2026"></livetally-widget>
//
// Attributes: campaign (required), base (the node; default: where this module came from),
// kinds ("like,cheer"; default: the campaign's kinds but `share`), lang (en | zh-CN;
// default: the page's), token (a join token, for access:"token" campaigns), region, unit
// (the viewer's unit of the campaign's organisation; default: the page's own ?unit=; the
// widget then shows the viewer's branch, "Guangdong · 120,345 watching").
// Everything is inside a Shadow DOM: the page's CSS cannot break it, and it themes it only
// through --lt-accent, --lt-bg, --lt-fg, --lt-radius and --lt-font. docs/embedding.md.
//
// The SDK owns the socket, the ledger of unacknowledged taps (kept across reloads) and
// exactly-once delivery, and its `liveView` the loading, the states and the counts (which
// include the viewer's own taps at once), as for the viewer page; the strings are the
// SDK's table (strings.js), which the viewer page uses too. From npm (@livetally/widget)
// this is one bundle with the SDK and the strings in it.

import { formatCompact, formatNumber, liveView } from '../sdk/v1/livetally.js';
import { pickLang, text } from '../sdk/v1/strings.js';

/** Screen readers hear the viewer count once it held this long, at most this often. */
const ANNOUNCE_SETTLE_MS = 2000;
const ANNOUNCE_EVERY_MS = 15000;
/** Kinds with their own icon and name; any other kind gets the generic one. */
const KNOWN_KINDS = ['like', 'cheer', 'comment', 'share'];
const KIND = /^[a-z][a-z0-9_]{0,31}$/;

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
.branch { margin: -0.4rem 0 0; font-size: 0.9rem; color: var(--_muted); font-variant-numeric: tabular-nums; }
.branch[hidden] { display: none; }
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

/** Where this module came from: a node's /embed/v1.js, or (a bundle from npm) its <script>. */
const HERE = (typeof document !== 'undefined' && document.currentScript && document.currentScript.src) || import.meta.url;
/** The node that served this module at /embed/v1.js; '' for a copy from anywhere else. */
const HOME = HERE && /\/embed\/v1\.js$/.test(new URL(HERE).pathname) ? new URL('..', HERE).href.replace(/\/+$/, '') : '';

let widgetSeq = 0;

export class LivetallyWidget extends HTMLElement {
  static get observedAttributes() {
    return ['campaign', 'base', 'token', 'region', 'unit', 'kinds', 'lang'];
  }

  #root;
  #els;
  /** The campaign as the SDK's liveView follows it; null while disconnected. */
  #view = null;
  #connected = false;
  #announced = null;
  #lastAnnounce = -Infinity;
  #announceTimer = null;

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
      branch: node('p', { class: 'branch', part: 'branch', hidden: '' }),
      announce: node('p', { class: 'sr-only', 'aria-live': 'polite' }),
      buttons: node('div', { class: 'buttons', role: 'group', part: 'buttons' }),
    };
    els.status.append(node('span', { class: 'dot', 'aria-hidden': 'true' }), els.stateText);
    els.card.append(
      node('div', { class: 'head' }, node('p', { class: 'viewers' }, els.n, els.label), els.status),
      els.branch,
      els.announce,
      els.buttons,
    );
    this.#root.append(els.card);
    adoptStyle(this.#root);
    this.#els = { ...els, id };
  }

  // -- What the page can read ------------------------------------------------------------

  /** loading | connecting | live | reconnecting | ended | missing | private | expired | closed */
  get state() { return this.#view ? this.#view.state : 'loading'; }
  /** The number shown: viewers now (the peak once the campaign ended). */
  get viewers() {
    const stats = this.#view ? this.#view.stats : {};
    return (this.state === 'ended' ? stats.peak_viewers : stats.viewers) || 0;
  }
  /** This viewer's taps the node has not acknowledged yet (they are kept until it does). */
  get pending() { return this.#view ? this.#view.pending() : 0; }
  /** The viewer id the node admitted (a token's `sub` when it has one); '' before that. */
  get viewer() { return this.#view && this.#view.client && this.#view.everLive ? this.#view.client.viewer : ''; }
  /** The SDK client behind the widget (`register()`, events), or null before it connects. */
  get client() { return this.#view ? this.#view.client : null; }
  /** The viewer's branch from the node's `unit` frame (with a `unit` attribute), or null. */
  get branch() { return this.#view ? this.#view.branch : null; }

  // -- Lifecycle ---------------------------------------------------------------------------

  connectedCallback() {
    this.#connected = true;
    this.#start();
  }

  disconnectedCallback() {
    this.#connected = false;
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

  #t(key, vars) {
    return text(this.#lang, key, vars);
  }

  /** Closes the view; what its client holds unacknowledged stays stored for the next page. */
  #stop() {
    clearTimeout(this.#announceTimer);
    this.#announceTimer = null;
    if (this.#view) this.#view.close();
    this.#view = null;
  }

  #start() {
    this.#stop();
    const options = { base: this.getAttribute('base') || HOME || undefined, campaign: this.getAttribute('campaign') || '' };
    for (const name of ['token', 'region', 'unit']) {
      const v = this.getAttribute(name);
      if (v) options[name] = v;
    }
    const view = liveView(options);
    this.#view = view;
    view.on('campaign', () => this.#buildButtons());
    view.on('welcome', () => {
      this.#announced = null;
      this.#lastAnnounce = -Infinity;
    });
    view.on('stats', () => this.#render('maybe'));
    view.on('counts', () => this.#renderCounts());
    view.on('unit', () => this.#renderBranch());
    view.on('state', (state) => this.#setState(state));
    view.on('error', (e) => {
      // A malformed attribute (`region`, `unit`, `base`): nothing to connect with.
      if (e.code && e.code.startsWith('bad_')) console.warn('livetally-widget:', e.message);
    });
    this.#buildButtons();
    this.#setState('loading');
  }

  // -- Taps --------------------------------------------------------------------------------

  /** One tap: the SDK stores it at once, batches it with its neighbours and sends it. */
  #tap(kind, button) {
    if (!this.#view || !this.#view.tappable) return;
    this.#view.interact(kind, 1).catch(() => {
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
    const campaign = this.#view && this.#view.campaign;
    const have = (campaign && campaign.kinds) || [];
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

  #kindName(kind) {
    return KNOWN_KINDS.includes(kind) ? this.#t(`kind_${kind}`) : kind.replace(/_/g, ' ');
  }

  #setState(state) {
    const changed = state !== this.dataset.state;
    this.#render();
    if (changed) {
      this.dispatchEvent(new CustomEvent('livetally-state', { detail: { state }, bubbles: true, composed: true }));
    }
  }

  #render(announce = 'no') {
    const { card, stateText, n, label, buttons, announce: live } = this.#els;
    const lang = this.#lang;
    const { state } = this;
    const view = this.#view;
    card.setAttribute('lang', lang);
    card.dataset.state = state;
    this.dataset.state = state;
    const title = view && view.campaign ? view.campaign.title : this.getAttribute('campaign') || '';
    card.setAttribute('aria-label', this.#t('widget_label', { title }));
    buttons.setAttribute('aria-label', this.#t('reactions'));
    const offline = state !== 'live' && TAPPABLE.includes(state) && Boolean(view && view.offline);
    card.dataset.offline = String(offline);
    stateText.textContent = this.#t(offline ? 'state_offline' : `state_${state}`);
    const shown = this.viewers;
    n.textContent = formatNumber(shown, lang);
    this.dataset.viewers = String(shown);
    label.textContent = this.#t(state === 'ended' ? 'peak' : 'watching_now');
    for (const b of buttons.children) {
      b.querySelector('.name').textContent = this.#kindName(b.dataset.kind);
      b.disabled = !TAPPABLE.includes(state);
    }
    this.#renderCounts();
    this.#renderBranch();
    if (announce === 'maybe' && state === 'live') this.#scheduleAnnounce(live);
  }

  /**
   * The viewer's branch from the node's `unit` frame: its deepest unit counted live and how
   * many watch there ("Guangdong · 120,345 watching"), the whole path in its tooltip.
   * Hidden without a unit, and once the campaign ended.
   */
  #renderBranch() {
    const { branch } = this.#els;
    const path = this.#view && this.#view.branch;
    const last = path && path.length ? path[path.length - 1] : null;
    branch.hidden = !last || this.state === 'ended';
    if (!last) {
      branch.textContent = '';
      delete this.dataset.unit;
      return;
    }
    const lang = this.#lang;
    branch.textContent = this.#t('branch_watching', { name: last.name, n: formatNumber(last.viewers || 0, lang) });
    branch.title = this.#t('branch_label', { path: path.map((u) => u.name).join(' › ') });
    branch.dataset.unit = last.code;
    branch.dataset.viewers = String(last.viewers || 0);
    this.dataset.unit = last.code;
  }

  #renderCounts() {
    const lang = this.#lang;
    for (const b of this.#els.buttons.children) {
      const total = this.#view ? this.#view.total(b.dataset.kind) : 0;
      b.dataset.count = String(total);
      b.querySelector('.count').textContent = formatCompact(total, lang);
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
    const view = this.#view;
    this.#announceTimer = setTimeout(() => {
      this.#announceTimer = null;
      const now = view.stats.viewers || 0;
      if (view !== this.#view || this.state !== 'live' || now === this.#announced) return;
      this.#announced = now;
      this.#lastAnnounce = Date.now();
      live.textContent = this.#t('viewers_announce', { n: formatNumber(now, this.#lang) });
    }, wait);
  }
}

if (!customElements.get('livetally-widget')) customElements.define('livetally-widget', LivetallyWidget);
