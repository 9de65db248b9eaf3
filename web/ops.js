// The operator dashboard, /ops: sign in with the operator token (kept for this tab only,
// and sent only in Authorization headers), list and create campaigns, and watch one live
// over the operator socket (the SDK's operator watcher, ./livetally.js, which opens it with
// a single-use ticket: the token is in no URL the page requests).

import { t, lang, initLang, applyI18n } from './i18n.js';
import { connect } from './livetally.js';
import { session, formatNumber, formatCompact, formatTime, api, el } from './common.js';
import { LineChart } from './chart.js';
import { showChannels } from './ops-channels.js';
import { addMilestones, showMilestones } from './ops-milestones.js';
import { registrationFields } from './ops-signups.js';
import { showWebhooks } from './ops-webhooks.js';
import { initOrgs, renderOrgs, showOrgTree } from './ops-orgs.js';

const TOKEN_KEY = 'livetally.opsToken';
/** How often /readyz is asked while the node is fine, and while it is not. */
const READY_EVERY_MS = 5000;
const READY_DEGRADED_EVERY_MS = 2000;
/** Interactions per second are the frame-to-frame deltas summed over this window. */
const RATE_WINDOW_MS = 5000;
/** A node whose presence is older than this is shown as stale. */
const NODE_STALE_MS = 15000;

const $ = (id) => document.getElementById(id);
const main = $('main');

let token = '';
let campaigns = [];
let selected = null;
/** Bumped on every selection so late answers for an older one are ignored. */
let generation = 0;
let live = null;
let latest = null;
let chart = null;

// ---------------------------------------------------------------------------------------
// Signing in and the API.

/** The API with the operator token; a refused token signs the tab out. */
async function authed(path, opts = {}) {
  const r = await api(path, { ...opts, token });
  if (r.status === 401 || r.status === 403) signOut(t('signin_rejected'));
  return r;
}

async function signIn(candidate, quiet) {
  const r = await api('/api/v1/campaigns', { token: candidate });
  if (r.ok && r.data) {
    token = candidate;
    session.set(TOKEN_KEY, token);
    showDash(r.data.campaigns || []);
    return;
  }
  let message;
  if (r.status === 401 || r.status === 403) message = t('signin_wrong');
  else if (r.status === 0) message = t('node_unreachable');
  else message = r.error ? r.error.message : String(r.status);
  showSignIn(quiet && r.status !== 0 ? t('signin_rejected') : message);
}

function showSignIn(message) {
  main.dataset.signedIn = 'false';
  $('signin').hidden = false;
  $('dash').hidden = true;
  $('signout').hidden = true;
  const err = $('signin-error');
  err.hidden = !message;
  err.textContent = message || '';
  $('token').setAttribute('aria-invalid', message ? 'true' : 'false');
  $('token').focus();
}

function signOut(message) {
  token = '';
  session.remove(TOKEN_KEY);
  closeLive();
  selected = null;
  showSignIn(message || '');
}

function showDash(list) {
  main.dataset.signedIn = 'true';
  $('signin').hidden = true;
  $('dash').hidden = false;
  $('signout').hidden = false;
  $('token').value = '';
  setCampaigns(list);
  showWebhooks(authed);
  initOrgs(authed, download);
  const wanted = new URLSearchParams(location.hash.slice(1)).get('c');
  const c = campaigns.find((x) => x.id === wanted);
  if (c) select(c);
}

// ---------------------------------------------------------------------------------------
// The campaign list.

function setCampaigns(list) {
  campaigns = list.slice().sort((a, b) =>
    (a.state === 'live' ? 0 : 1) - (b.state === 'live' ? 0 : 1) || (b.created_at || 0) - (a.created_at || 0));
  renderList();
}

async function refreshList() {
  const r = await authed('/api/v1/campaigns');
  if (r.ok && r.data) {
    setCampaigns(r.data.campaigns || []);
    if (selected) {
      const fresh = campaigns.find((c) => c.id === selected.id);
      if (fresh && fresh.state !== selected.state) select(fresh);
      else if (fresh) { selected = fresh; renderHead(); }
    }
  }
}

function renderList() {
  const ul = $('campaigns');
  ul.replaceChildren();
  for (const c of campaigns) {
    const current = selected && selected.id === c.id;
    const button = el('button', { type: 'button', class: 'campaign-item', 'aria-current': current ? 'true' : null,
      dataset: { id: c.id, state: c.state } },
      el('span', { class: 'ci-title', text: c.title }),
      el('span', { class: 'ci-meta' },
        el('code', { text: c.id }),
        el('span', { class: `badge badge-${c.state}`, text: t(`badge_${c.state}`) }),
        c.access === 'token' ? el('span', { class: 'badge badge-quiet', text: t('access_token_short') }) : null));
    button.addEventListener('click', () => select(c));
    ul.append(el('li', {}, button));
  }
  $('campaigns-empty').hidden = campaigns.length > 0;
}

// ---------------------------------------------------------------------------------------
// The create form: the server validates, and its answer is shown next to the field.

const FIELDS = ['id', 'title', 'stream_url', 'kinds', 'regions', 'org', 'milestones', 'access'];

function clearErrors() {
  for (const f of FIELDS) {
    const p = $(`f-${f}-error`);
    p.hidden = true;
    p.textContent = '';
    const input = $(`f-${f}`);
    if (input) input.removeAttribute('aria-invalid');
    p.closest('.field').classList.remove('has-error');
  }
  $('create-error').hidden = true;
  $('create-error').textContent = '';
}

function showFieldError(field, message) {
  const p = FIELDS.includes(field) ? $(`f-${field}-error`) : $('create-error');
  p.textContent = message;
  p.hidden = false;
  const wrap = p.closest('.field');
  if (wrap) wrap.classList.add('has-error');
  const input = FIELDS.includes(field) ? ($(`f-${field}`) || document.querySelector(`[name="${field}"]`)) : null;
  if (input) {
    input.setAttribute('aria-invalid', 'true');
    input.focus();
  }
}

function list(value) {
  return value.split(/[\s,，、;]+/).map((s) => s.trim()).filter(Boolean);
}

async function create(ev) {
  ev.preventDefault();
  clearErrors();
  const form = $('create');
  const data = new FormData(form);
  const body = { id: String(data.get('id') || '').trim(), title: String(data.get('title') || '') };
  const stream = String(data.get('stream_url') || '').trim();
  if (stream) body.stream_url = stream;
  const kinds = list(String(data.get('kinds') || ''));
  if (kinds.length) body.kinds = kinds;
  const regions = list(String(data.get('regions') || ''));
  if (regions.length) body.regions = regions;
  const org = String(data.get('org') || '').trim();
  if (org) body.org = org;
  body.access = String(data.get('access') || 'public');
  const milestonesError = addMilestones(body, data);
  if (milestonesError) return showFieldError('milestones', milestonesError);
  if (registrationFields().length) body.registration_fields = registrationFields();
  const submit = form.querySelector('button[type="submit"]');
  submit.disabled = true;
  $('create-result').textContent = '';
  const r = await authed('/api/v1/campaigns', { method: 'POST', body });
  submit.disabled = false;
  if (r.status === 201 && r.data) {
    $('create-result').textContent = t('created', { id: r.data.id });
    form.reset();
    campaigns.push(r.data);
    setCampaigns(campaigns);
    select(r.data);
    return;
  }
  if (r.status === 400 && r.error) showFieldError(r.error.field, r.error.message);
  else if (r.status === 409) showFieldError('id', t('id_taken'));
  else if (r.status === 0) showFieldError('', t('node_unreachable'));
  else if (r.status !== 401 && r.status !== 403) showFieldError('', r.error ? r.error.message : String(r.status));
}

// ---------------------------------------------------------------------------------------
// The live panel.

function select(c) {
  generation += 1;
  const gen = generation;
  closeLive();
  selected = c;
  latest = null;
  history.replaceState(null, '', `#c=${encodeURIComponent(c.id)}`);
  renderList();
  $('panel-empty').hidden = true;
  $('panel-live').hidden = false;
  $('panel').dataset.campaign = c.id;
  $('token-out').hidden = true;
  $('panel-result').textContent = '';
  renderHead();
  showMilestones(c, authed, (updated) => { c.milestones = updated.milestones; });
  showChannels(c, authed, (updated) => { c.share_channels = updated.share_channels; });
  renderStats(emptyStats());
  chart.set([]);
  const buffered = [];
  let historyLoaded = false;
  const addPoint = (at, v) => {
    if (historyLoaded) { chart.add(at, v); chart.render(); } else buffered.push([at, v]);
  };
  authed(`/api/v1/campaigns/${encodeURIComponent(c.id)}/series?metric=viewers`).then((r) => {
    if (gen !== generation) return;
    chart.set(r.ok && r.data ? r.data.points : []);
    historyLoaded = true;
    for (const [at, v] of buffered) chart.add(at, v);
    chart.render();
  });
  if (c.state === 'live') openLive(c, gen, addPoint);
  else showFinal(c, gen);
  showOrgTree(c, live ? live.client : null);
}

function emptyStats() {
  return { viewers: 0, peak_viewers: 0, peak_at: null, unique_viewers: 0, interactors: 0, interactions: {},
    registrations: 0, share_visits: 0, regions: {}, share_visits_by_channel: {}, nodes: [] };
}

/** An ended campaign: its frozen numbers from the report. */
async function showFinal(c, gen) {
  setLiveState('ended');
  const r = await authed(`/api/v1/campaigns/${encodeURIComponent(c.id)}/report`);
  if (gen !== generation || !r.ok || !r.data) return;
  const rep = r.data;
  renderStats({ ...emptyStats(), ...rep, viewers: 0, regions: rep.regions_at_peak || {}, nodes: [] }, true);
}

/** Watches `c` live over an operator socket (the SDK's operator watcher). */
function openLive(c, gen, addPoint) {
  const client = connect({ campaign: c.id, role: 'operator', token });
  live = { client, frames: [], gen, addPoint, everLive: false };
  const mine = () => live && live.client === client;
  client.on('state', (s, info) => {
    if (!mine()) return;
    if (s === 'open') {
      live.everLive = true;
      live.frames = [];
      setLiveState('live');
    } else if (s === 'connecting') {
      setLiveState(live.everLive || info.attempt > 0 ? 'reconnecting' : 'connecting');
    } else if (s === 'closed' && !info.final) {
      setLiveState('reconnecting');
    } else if (s === 'ended') {
      onEnded();
    }
  });
  client.on('stats', (s) => { if (mine()) onStats(s); });
  client.on('error', (e) => {
    if (!mine() || !e.fatal) return;
    if (e.code === 'unauthorized') signOut(t('signin_rejected'));
    else onEnded(); // deleted meanwhile: the list says what is left
  });
}

function closeLive() {
  if (!live) return;
  const { client } = live;
  live = null;
  client.close();
  setLiveState('idle');
}

function onEnded() {
  closeLive();
  setLiveState('ended');
  refreshList();
}

function totalInteractions(s) {
  let n = 0;
  for (const v of Object.values(s.interactions || {})) n += v;
  return n;
}

function onStats(s) {
  if (!live) return;
  const now = performance.now();
  live.frames.push({ recv: now, total: totalInteractions(s) });
  if (Number.isFinite(s.at)) live.addPoint(s.at, s.viewers || 0);
  renderStats(s);
}

/**
 * Interactions per second: the deltas between consecutive frames received in the last
 * RATE_WINDOW_MS, over that window (or the time connected, if shorter). Frames only come
 * when something changed, so a quiet window decays to zero on its own.
 */
function rate() {
  if (!live || live.frames.length < 2) return 0;
  const now = performance.now();
  const frames = live.frames;
  while (frames.length > 2 && frames[1].recv < now - RATE_WINDOW_MS) frames.shift();
  let sum = 0;
  for (let i = 1; i < frames.length; i++) {
    if (frames[i].recv >= now - RATE_WINDOW_MS) sum += Math.max(0, frames[i].total - frames[i - 1].total);
  }
  const window = Math.max(1000, Math.min(RATE_WINDOW_MS, now - frames[0].recv));
  return sum / (window / 1000);
}

function setLiveState(s) {
  const box = $('live-state');
  box.dataset.state = s;
  $('live-state-text').textContent = s === 'idle' ? '' : t(`live_${s}`);
}

// ---------------------------------------------------------------------------------------
// Rendering.

function renderHead() {
  const c = selected;
  if (!c) return;
  $('c-title').textContent = c.title;
  $('c-id').textContent = c.id;
  const st = $('c-state');
  st.textContent = t(`badge_${c.state}`);
  st.className = `badge badge-${c.state}`;
  $('c-access').textContent = t(c.access === 'token' ? 'access_token_short' : 'access_public_short');
  $('open-viewer').href = `/c/${encodeURIComponent(c.id)}`;
  $('mint').hidden = !(c.access === 'token' && c.state === 'live');
  $('end').hidden = c.state !== 'live';
  $('regions-title').textContent = t(c.state === 'live' ? 'by_region' : 'by_region_peak');
}

function setValue(id, value, text) {
  const e = $(id);
  e.dataset.value = String(value);
  e.textContent = text;
}

function renderStats(s, final) {
  latest = s;
  const L = lang();
  setValue('m-viewers', s.viewers || 0, formatNumber(s.viewers || 0, L));
  setValue('m-peak', s.peak_viewers || 0, formatNumber(s.peak_viewers || 0, L));
  $('m-peak-at').textContent = s.peak_at ? t('peak_at', { time: formatTime(s.peak_at, L) }) : '';
  setValue('m-unique', s.unique_viewers || 0, formatNumber(s.unique_viewers || 0, L));
  renderRate(final);
  $('m-interactors').textContent = t('interactors', { n: formatNumber(s.interactors || 0, L) });
  setValue('m-registrations', s.registrations || 0, formatNumber(s.registrations || 0, L));
  setValue('m-shares', s.share_visits || 0, formatNumber(s.share_visits || 0, L));

  const kinds = {};
  for (const k of (selected && selected.kinds) || []) kinds[k] = 0;
  Object.assign(kinds, s.interactions || {});
  bars($('kinds'), kinds, 'kind', false, (k) => kindLabel(k));
  bars($('regions'), s.regions || {}, 'region', true, (r) => (r === 'unknown' || r === 'other' ? t(`region_${r}`) : r));
  bars($('channels'), s.share_visits_by_channel || {}, 'channel', true, (ch) => channelLabel(ch));
  renderNodes(s.nodes || []);
}

function renderRate(final) {
  const r = final ? 0 : rate();
  const shown = r >= 10 ? Math.round(r) : Math.round(r * 10) / 10;
  setValue('m-rate', shown, formatNumber(shown, lang()));
}

function kindLabel(k) {
  return ['like', 'cheer', 'comment', 'share'].includes(k) ? t(`kind_${k}`) : k;
}

function channelLabel(ch) {
  return ['wechat', 'weibo', 'x', 'link', 'other'].includes(ch) ? t(`channel_${ch}`) : ch;
}

/** A list of labelled bars, longest first when `sort`; each row carries data-<attr> and data-value. */
function bars(ul, values, attr, sort, label) {
  let entries = Object.entries(values);
  if (sort) entries.sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  const max = entries.reduce((m, [, v]) => Math.max(m, v), 0);
  ul.replaceChildren();
  if (!entries.length) {
    ul.append(el('li', { class: 'bars-empty muted', text: t('no_data') }));
    return;
  }
  for (const [key, v] of entries) {
    const fill = el('span', { class: 'bar-fill' });
    fill.style.width = `${max ? Math.max(v ? 2 : 0, (v / max) * 100) : 0}%`;
    ul.append(el('li', { dataset: { [attr]: key, value: String(v) } },
      el('span', { class: 'bar-label', text: label(key) }),
      el('span', { class: 'bar-track', 'aria-hidden': 'true' }, fill),
      el('span', { class: 'bar-value', text: formatCompact(v, lang()) })));
  }
}

function renderNodes(nodes) {
  const tbody = $('nodes');
  tbody.replaceChildren();
  if (!nodes.length) {
    tbody.append(el('tr', {}, el('td', { colspan: '4', class: 'muted', text: t('no_data') })));
    return;
  }
  const sum = nodes.reduce((m, n) => m + (n.viewers || 0), 0);
  const now = Date.now();
  for (const n of nodes.slice().sort((a, b) => (b.viewers || 0) - (a.viewers || 0))) {
    const age = Math.max(0, now - (n.updated_at || now));
    const stale = age > NODE_STALE_MS;
    const pct = sum ? Math.round(((n.viewers || 0) / sum) * 1000) / 10 : 0;
    tbody.append(el('tr', { class: stale ? 'stale' : null, dataset: { node: n.node, value: String(n.viewers || 0) } },
      el('td', {}, el('code', { text: n.node })),
      el('td', { class: 'num', text: formatNumber(n.viewers || 0, lang()) }),
      el('td', { class: 'num', text: `${formatNumber(pct, lang())}%` }),
      el('td', { class: 'num', text: stale ? t('stale') : t('seconds_ago', { n: Math.round(age / 1000) }) })));
  }
}

// ---------------------------------------------------------------------------------------
// Actions: report, join link, end.

/**
 * Saves the CSV at `path` as a file, fetched with the token in a header (a plain link
 * would need it in the URL); named as the node's Content-Disposition says, else
 * `fallback`. `report(text)` is told how it went.
 */
async function download(path, fallback, report) {
  let response;
  try {
    response = await fetch(path, {
      headers: { Authorization: `Bearer ${token}`, Accept: 'text/csv' },
      cache: 'no-store',
    });
  } catch {
    report(t('node_unreachable'));
    return;
  }
  if (response.status === 401 || response.status === 403) { signOut(t('signin_rejected')); return; }
  if (!response.ok) {
    report(t('download_failed', { status: response.status }));
    return;
  }
  const blob = await response.blob();
  const disposition = response.headers.get('content-disposition') || '';
  const m = /filename="?([^";]+)"?/.exec(disposition);
  const a = el('a', { href: URL.createObjectURL(blob), download: m ? m[1] : fallback });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
  report(t('downloaded'));
}

function downloadReport() {
  if (!selected) return;
  const id = selected.id;
  download(`/api/v1/campaigns/${encodeURIComponent(id)}/report?format=csv`, `livetally-${id}-report.csv`,
    (text) => { $('panel-result').textContent = text; });
}

async function mintToken() {
  if (!selected) return;
  const r = await authed(`/api/v1/campaigns/${encodeURIComponent(selected.id)}/tokens`, { method: 'POST', body: {} });
  if (!r.ok || !r.data) {
    $('panel-result').textContent = r.error ? r.error.message : t('node_unreachable');
    return;
  }
  const url = `${location.origin}/c/${encodeURIComponent(selected.id)}?token=${encodeURIComponent(r.data.token)}`;
  $('token-url').value = url;
  $('token-expiry').textContent = t('expires', { time: formatTime(r.data.expires_at, lang()) });
  $('token-out').hidden = false;
  $('token-url').select();
}

async function copyToken() {
  const input = $('token-url');
  try {
    await navigator.clipboard.writeText(input.value);
    $('panel-result').textContent = t('copied');
  } catch {
    input.select();
    $('panel-result').textContent = t('copy_manual');
  }
}

function askEnd() {
  if (!selected) return;
  $('confirm-text').textContent = t('confirm_end_text', { title: selected.title });
  $('confirm-end').returnValue = '';
  $('confirm-end').showModal();
}

async function endCampaign() {
  if (!selected) return;
  const id = selected.id;
  const r = await authed(`/api/v1/campaigns/${encodeURIComponent(id)}/end`, { method: 'POST' });
  if (r.ok && r.data) {
    $('panel-result').textContent = t('ended_ok');
    const i = campaigns.findIndex((c) => c.id === id);
    if (i >= 0) campaigns[i] = r.data;
    setCampaigns(campaigns);
    if (selected && selected.id === id) select(r.data);
  } else if (r.status !== 401 && r.status !== 403) {
    $('panel-result').textContent = r.error ? r.error.message : t('node_unreachable');
  }
}

// ---------------------------------------------------------------------------------------
// Node readiness: a 503 from /readyz (shutting down), or a 200 saying the store is down
// (the node still admits viewers), shows a banner rather than a dashboard that silently
// stops moving.

let readyTimer = null;
async function pollReady() {
  clearTimeout(readyTimer);
  const r = await api('/readyz');
  let state;
  if (r.status === 200 && !(r.data && r.data.store === 'down')) state = 'ready';
  else if (r.status === 0) state = 'down';
  else state = 'degraded';
  const pill = $('ready');
  pill.dataset.ready = state;
  $('ready-text').textContent = t(`ready_${state}`);
  const banner = $('degraded');
  banner.hidden = state === 'ready';
  banner.dataset.ready = state;
  if (state === 'degraded') {
    const why = r.data && r.data.status;
    const pending = r.data && Number.isFinite(r.data.pending) ? r.data.pending : null;
    banner.textContent = t(why === 'shutting_down' ? 'banner_shutting_down' : 'banner_degraded',
      { pending: pending == null ? '?' : formatNumber(pending, lang()) });
  } else if (state === 'down') {
    banner.textContent = t('banner_down');
  }
  readyTimer = setTimeout(pollReady, state === 'ready' ? READY_EVERY_MS : READY_DEGRADED_EVERY_MS);
}

// ---------------------------------------------------------------------------------------
// Start.

function rerender() {
  applyI18n();
  renderList();
  if (selected) {
    renderHead();
    setLiveState($('live-state').dataset.state);
    if (latest) renderStats(latest, selected.state !== 'live');
    chart.render();
  }
  renderOrgs();
  pollReady();
}

function start() {
  chart = new LineChart($('chart'), {
    label: (last, peak) => t('chart_label', { last: formatNumber(last, lang()), peak: formatNumber(peak, lang()) }),
    empty: () => t('no_data'),
    number: (n) => formatCompact(n, lang()),
    time: (ms, s) => new Intl.DateTimeFormat(lang(), { hour: '2-digit', minute: '2-digit', second: s ? '2-digit' : undefined }).format(ms),
  });
  initLang($('lang'), rerender);
  $('signin-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const value = $('token').value.trim();
    if (!value) { showSignIn(t('token_required')); return; }
    signIn(value, false);
  });
  $('signout').addEventListener('click', () => signOut(''));
  $('refresh').addEventListener('click', refreshList);
  $('create').addEventListener('submit', create);
  $('download').addEventListener('click', downloadReport);
  $('mint').addEventListener('click', mintToken);
  $('copy-token').addEventListener('click', copyToken);
  $('end').addEventListener('click', askEnd);
  $('confirm-end').addEventListener('close', () => {
    if ($('confirm-end').returnValue === 'end') endCampaign();
  });
  // Keep the rate decaying and the chart's time axis moving between frames.
  setInterval(() => {
    if (live && selected) {
      renderRate(false);
      chart.render();
    }
  }, 1000);
  pollReady();
  const saved = session.get(TOKEN_KEY);
  if (saved) signIn(saved, true);
  else showSignIn('');
}

start();
