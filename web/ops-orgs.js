// Organisations on /ops. The sidebar uploads an org file (CSV `code,parent,name` or NDJSON,
// as the file input picks it) and shows the summary, or the 400's line, field and message;
// it lists the orgs there are. For a campaign counted by an org, the panel shows its tree
// one level at a time: the units route answers first, then the operator socket's `watch`
// keeps the level live (ops.js's SDK client, which asks again after a reconnect). A click
// on a unit shows its children, the breadcrumbs lead back up; a search by code or name
// prefix finds a unit among its siblings; each level exports as CSV. ops.js calls
// `initOrgs` once signed in and `showOrgTree` for each campaign it selects.

import { t, lang } from './i18n.js';
import { el, formatNumber } from './common.js';

/** Units asked per page of the units route: a screenful, well under its 1,000. */
const PAGE = 100;
/** The two bodies the upload takes, by what a file's name ends with. */
const TYPES = [[/\.csv$/i, 'text/csv'], [/\.(ndjson|jsonl)$/i, 'application/x-ndjson']];

const $ = (id) => document.getElementById(id);

/** What ops.js lends: its operator API call and its authorised download. */
let ctx = null;

// ---------------------------------------------------------------------------------------
// Upload.

/**
 * The content type for `file`: its name's, else its own, else its first character's (an
 * NDJSON line opens with `{`, a CSV with its header).
 */
async function typeOf(file) {
  for (const [re, type] of TYPES) if (re.test(file.name)) return type;
  if (TYPES.some(([, type]) => type === file.type)) return file.type;
  const head = await file.slice(0, 256).text();
  return head.trimStart().startsWith('{') ? 'application/x-ndjson' : 'text/csv';
}

function say(result, status, text, extra = {}) {
  result.dataset.status = status;
  result.dataset.line = extra.line ?? '';
  result.dataset.field = extra.field ?? '';
  result.textContent = text;
}

function levelsText(levels) {
  return (levels || []).map((n) => formatNumber(n, lang())).join(' · ');
}

async function upload(ev) {
  ev.preventDefault();
  const result = $('org-result');
  const idInput = $('org-id');
  const fileInput = $('org-file');
  const org = idInput.value.trim();
  const file = fileInput.files && fileInput.files[0];
  if (!org) { say(result, 'error', t('org_id_required')); idInput.focus(); return; }
  if (!file) { say(result, 'error', t('org_file_required')); fileInput.focus(); return; }
  const submit = $('org-form').querySelector('button[type="submit"]');
  submit.disabled = true;
  say(result, 'busy', t('org_uploading', { name: file.name }));
  const r = await ctx.authed(`/api/v1/orgs/${encodeURIComponent(org)}`, { method: 'PUT', body: file, contentType: await typeOf(file) });
  submit.disabled = false;
  if (r.ok && r.data) {
    const s = r.data;
    say(result, 'ok', t(r.status === 201 ? 'org_created' : 'org_replaced', {
      org: s.org, version: s.version, units: formatNumber(s.units, lang()), levels: levelsText(s.levels),
    }));
    listOrgs();
    return;
  }
  const e = r.error || {};
  if (r.status === 0) say(result, 'error', t('node_unreachable'));
  else if (Number.isInteger(e.line)) {
    // The message names the line too ("line 3: …"), which the sentence already says.
    const message = String(e.message || '').replace(/^line \d+:\s*/i, '');
    say(result, 'error', t('org_error_line', { line: formatNumber(e.line, lang()), field: e.field || '', message }),
      { line: String(e.line), field: e.field || '' });
  } else if (r.status !== 401 && r.status !== 403) {
    say(result, 'error', e.field ? `${e.field}: ${e.message}` : (e.message || String(r.status)), { field: e.field || '' });
  }
}

/** The orgs there are (each one's newest version), as last listed. */
let orgs = [];

async function listOrgs() {
  const r = await ctx.authed('/api/v1/orgs');
  if (!r.ok || !r.data) return;
  orgs = r.data.orgs || [];
  renderOrgList();
}

function renderOrgList() {
  const ul = $('org-list');
  ul.replaceChildren(...orgs.map((s) => el('li', { dataset: { org: s.org, version: String(s.version) } },
    el('code', { text: s.org }), ' ',
    el('span', { class: 'muted', text: t('org_summary', { version: s.version, units: formatNumber(s.units, lang()) }) }))));
  $('org-none').hidden = orgs.length > 0;
}

/** Wires the upload form; `authed` is ops.js's operator API call, `download` its saved export. */
export function initOrgs(authed, download) {
  ctx = { authed, download };
  const form = $('org-form');
  if (!form) return;
  form.onsubmit = upload;
  listOrgs();
}

// ---------------------------------------------------------------------------------------
// The tree of a campaign.

/**
 * The tree shown: the campaign, its org version and levels, the unit whose children are
 * listed (`parent`, null for the top) with the breadcrumbs to it, the rows and the cursor
 * to the next page. Replaced for each campaign; `off` unsubscribes from its client.
 */
let tree = null;

/**
 * Shows campaign `c`'s tree when it counts by an org (hidden otherwise). `client` is the
 * live operator socket's SDK client (null for an ended campaign): its `units` frames keep
 * the shown level live.
 */
export async function showOrgTree(c, client) {
  if (tree && tree.off) tree.off();
  tree = null;
  const card = $('org-card');
  if (!card) return;
  card.hidden = !c.org;
  $('org-hits').hidden = true;
  $('org-q').value = '';
  $('org-tree-result').textContent = '';
  if (!c.org) return;
  const mine = { c, org: c.org, version: c.org_version, levels: [], parent: null, crumbs: [], units: [], unassigned: null,
    cursor: null, client, off: null, highlight: '' };
  tree = mine;
  $('org-name').textContent = c.org_version ? `${c.org} · v${c.org_version}` : c.org;
  if (client) mine.off = client.on('units', (frame) => onFrame(mine, frame));
  $('org-q').closest('form').onsubmit = (ev) => { ev.preventDefault(); search(mine); };
  $('org-more').onclick = () => more(mine);
  $('org-export').onclick = () => exportLevel(mine);
  const summary = await ctx.authed(`/api/v1/orgs/${encodeURIComponent(c.org)}${versionQuery(mine, '?')}`);
  if (tree !== mine) return;
  if (summary.ok && summary.data) mine.levels = summary.data.levels || [];
  renderLevels(mine);
  go(mine, null, []);
}

function versionQuery(state, sep) {
  return state.version ? `${sep}version=${state.version}` : '';
}

function unitsPath(state, cursor) {
  const q = new URLSearchParams({ limit: String(PAGE) });
  if (state.parent) q.set('parent', state.parent);
  if (cursor) q.set('cursor', cursor);
  return `/api/v1/campaigns/${encodeURIComponent(state.c.id)}/units?${q}`;
}

/** Lists the children of `parent` (null: the top), reached through `crumbs`. */
async function go(state, parent, crumbs, highlight = '') {
  state.parent = parent;
  state.crumbs = crumbs;
  state.highlight = highlight;
  state.units = [];
  state.unassigned = null;
  state.cursor = null;
  renderCrumbs(state);
  renderRows(state, t('org_loading'));
  if (state.client) {
    try { state.client.watch(parent); } catch { /* a code outside the pattern never gets here */ }
  }
  const r = await ctx.authed(unitsPath(state));
  if (tree !== state || state.parent !== parent) return;
  if (r.ok && r.data) absorb(state, r.data, false);
  else if (!state.units.length) renderRows(state, t('org_unavailable', { status: r.status || t('node_unreachable') }));
}

/** The next page of the shown level. */
async function more(state) {
  if (!state.cursor) return;
  const parent = state.parent;
  const r = await ctx.authed(unitsPath(state, state.cursor));
  if (tree !== state || state.parent !== parent) return;
  if (r.ok && r.data) absorb(state, r.data, true);
}

/** A `units` frame of the watched level: its first page, live. */
function onFrame(state, frame) {
  if (tree !== state || (frame.parent ?? null) !== state.parent) return;
  absorb(state, frame, false);
}

/** Takes a page of the units route (or a frame: the same object); `append` adds a next page. */
function absorb(state, page, append) {
  const units = Array.isArray(page.units) ? page.units : [];
  if (append) {
    const seen = new Set(units.map((u) => u.code));
    state.units = [...state.units.filter((u) => !seen.has(u.code)), ...units];
  } else {
    // A live first page: rows of later pages the frame does not carry stay below it.
    const seen = new Set(units.map((u) => u.code));
    const rest = state.units.length > units.length ? state.units.slice(units.length).filter((u) => !seen.has(u.code)) : [];
    state.units = [...units, ...rest];
  }
  if (page.unassigned || state.parent === null) state.unassigned = page.unassigned || null;
  if (!append || page.next_cursor !== undefined) state.cursor = page.next_cursor || null;
  if (page.at) $('org-card').dataset.at = String(page.at);
  renderRows(state);
}

// ---------------------------------------------------------------------------------------
// Rendering.

function renderCrumbs(state) {
  const nav = $('org-crumbs');
  const items = [{ code: null, name: t('org_top') }, ...state.crumbs];
  nav.replaceChildren(...items.map((item, i) => {
    const last = i === items.length - 1;
    const crumb = last
      ? el('span', { class: 'crumb', 'aria-current': 'page', text: item.name, dataset: { unit: item.code || '' } })
      : el('button', { type: 'button', class: 'link-button crumb', text: item.name, dataset: { unit: item.code || '' } });
    if (!last) crumb.addEventListener('click', () => go(state, item.code, state.crumbs.slice(0, i)));
    return el('span', { class: 'crumb-item' }, i > 0 ? el('span', { class: 'crumb-sep', 'aria-hidden': 'true', text: '›' }) : null, crumb);
  }));
  $('org-units').dataset.parent = state.parent || '';
}

function sum(interactions) {
  return Object.values(interactions || {}).reduce((a, n) => a + (Number(n) || 0), 0);
}

/** The rows of the shown level; `message` instead when there is nothing to show yet. */
function renderRows(state, message) {
  const tbody = $('org-units');
  const L = lang();
  tbody.dataset.state = message ? 'waiting' : 'shown';
  tbody.replaceChildren();
  const rows = state.unassigned ? [...state.units, state.unassigned] : state.units;
  if (message || !rows.length) {
    tbody.append(el('tr', {}, el('td', { colspan: '7', class: 'muted', text: message || t('org_empty') })));
    $('org-more').hidden = true;
    return;
  }
  const deepest = state.levels.length || 6;
  for (const u of rows) {
    const unassigned = u === state.unassigned;
    const name = unassigned ? t('org_unassigned') : u.name;
    const drill = !unassigned && (u.level || 0) < deepest;
    const label = drill
      ? el('button', { type: 'button', class: 'link-button unit-name', text: name })
      : el('span', { class: 'unit-name', text: name });
    if (drill) label.addEventListener('click', () => go(state, u.code, [...state.crumbs, { code: u.code, name: u.name }]));
    const kinds = Object.entries(u.interactions || {}).map(([k, n]) => `${k} ${formatNumber(n, L)}`).join(' · ');
    tbody.append(el('tr', {
      class: u.code === state.highlight ? 'unit-hit' : null,
      dataset: { unit: u.code, level: String(u.level || ''), viewers: String(u.viewers || 0) },
    },
    el('th', { scope: 'row' }, label, unassigned ? null : el('code', { class: 'unit-code', text: u.code })),
    el('td', { class: 'num', dataset: { metric: 'viewers' }, text: formatNumber(u.viewers || 0, L) }),
    el('td', { class: 'num', dataset: { metric: 'peak_viewers' }, text: u.peak_viewers == null ? '—' : formatNumber(u.peak_viewers, L) }),
    el('td', { class: 'num', dataset: { metric: 'sessions' }, text: formatNumber(u.sessions || 0, L) }),
    el('td', { class: 'num', dataset: { metric: 'interactions' }, title: kinds || null, text: formatNumber(sum(u.interactions), L) }),
    el('td', { class: 'num', dataset: { metric: 'registrations' }, text: formatNumber(u.registrations || 0, L) }),
    el('td', { class: 'num', dataset: { metric: 'share_visits' }, text: formatNumber(u.share_visits || 0, L) })));
  }
  $('org-more').hidden = !state.cursor;
  const hit = tbody.querySelector('.unit-hit');
  if (hit) hit.scrollIntoView({ block: 'nearest' });
}

/** The export's level picker: one entry per level, with its unit count. */
function renderLevels(state) {
  const select = $('org-level');
  const levels = state.levels.length ? state.levels : [0];
  select.replaceChildren(...levels.map((n, i) => el('option', {
    value: String(i + 1),
    text: n ? t('org_level_units', { n: i + 1, units: formatNumber(n, lang()) }) : t('org_level_n', { n: i + 1 }),
  })));
}

// ---------------------------------------------------------------------------------------
// Search and export.

/** Units whose code or name begins with the search text (the org's version of the campaign). */
async function search(state) {
  const q = $('org-q').value.trim();
  const list = $('org-hits');
  if (!q) { list.hidden = true; list.replaceChildren(); return; }
  const path = `/api/v1/orgs/${encodeURIComponent(state.org)}/units?q=${encodeURIComponent(q)}${versionQuery(state, '&')}`;
  const r = await ctx.authed(path);
  if (tree !== state) return;
  list.hidden = false;
  if (!r.ok || !r.data) {
    list.replaceChildren(el('li', { class: 'muted', text: (r.error && r.error.message) || t('node_unreachable') }));
    return;
  }
  const units = r.data.units || [];
  if (!units.length) {
    list.replaceChildren(el('li', { class: 'muted', text: t('org_no_hits', { q }) }));
    return;
  }
  list.replaceChildren(...units.map((u) => {
    const button = el('button', { type: 'button', class: 'link-button', dataset: { unit: u.code } },
      el('span', { class: 'unit-name', text: u.name }), ' ', el('code', { text: u.code }));
    button.addEventListener('click', () => reveal(state, u));
    return el('li', { dataset: { unit: u.code, level: String(u.level) } },
      button, ' ', el('span', { class: 'muted', text: t('org_level_n', { n: u.level }) }));
  }));
}

/** Shows unit `u` (a search hit) among its siblings, with the breadcrumbs down to them. */
async function reveal(state, u) {
  const ancestors = (u.path || []).slice(0, -1);
  const views = await Promise.all(ancestors.map((code) =>
    ctx.authed(`/api/v1/orgs/${encodeURIComponent(state.org)}/units/${encodeURIComponent(code)}${versionQuery(state, '?')}`)));
  if (tree !== state) return;
  const crumbs = ancestors.map((code, i) => ({ code, name: (views[i].ok && views[i].data && views[i].data.name) || code }));
  $('org-hits').hidden = true;
  go(state, ancestors.length ? ancestors[ancestors.length - 1] : null, crumbs, u.code);
}

/** The chosen level's report (`report/units?level=N&format=csv`), saved as a file. */
function exportLevel(state) {
  const level = $('org-level').value || '1';
  const id = state.c.id;
  ctx.download(`/api/v1/campaigns/${encodeURIComponent(id)}/report/units?level=${level}&format=csv`,
    `livetally-${id}-units-level${level}.csv`, (text) => { $('org-tree-result').textContent = text; });
}

/** After a language switch: the tree's own words (names and codes stay as they are). */
export function renderOrgs() {
  if ($('org-list')) renderOrgList();
  if (!tree) return;
  renderCrumbs(tree);
  renderLevels(tree);
  renderRows(tree, $('org-units').dataset.state === 'waiting' && !tree.units.length ? t('org_loading') : undefined);
}
