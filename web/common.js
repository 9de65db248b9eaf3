// Helpers shared by the pages: storage that never throws, number and time formatting, one
// way to call the JSON API, and building elements. Storage and numbers are the SDK's
// (livetally.js), so the widget shows them as the pages do; sockets are the SDK's too.

import { formatCompact, formatNumber, pageStorage } from './livetally.js';

export { formatNumber, formatCompact };

/** Storage that never throws (memory for the page where the browser refuses it): the SDK's. */
export const local = pageStorage('localStorage');
export const session = pageStorage('sessionStorage');

/** A clock time, with the date when it is not today. */
export function formatTime(ms, lang) {
  if (ms == null) return '—';
  const d = new Date(ms);
  const today = new Date().toDateString() === d.toDateString();
  const opts = today
    ? { hour: '2-digit', minute: '2-digit', second: '2-digit' }
    : { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' };
  return new Intl.DateTimeFormat(lang, opts).format(d);
}

/**
 * Calls the JSON API. Never throws: `{status, ok, data, error, response}` where `status`
 * is 0 when the node could not be reached and `error` is the API's `{code, message, field}`.
 * A `body` is sent as JSON, or as it is (a File, a Blob) with the `contentType` given.
 */
export async function api(path, { method = 'GET', token, body, accept, contentType } = {}) {
  const headers = {};
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers['Content-Type'] = contentType || 'application/json';
  if (accept) headers.Accept = accept;
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined || contentType ? body : JSON.stringify(body),
      cache: 'no-store',
      credentials: 'omit',
    });
  } catch (e) {
    return { status: 0, ok: false, data: null, error: { code: 'network', message: String(e && e.message || e) } };
  }
  let data = null;
  const type = response.headers.get('content-type') || '';
  if (type.includes('application/json')) {
    try { data = await response.json(); } catch { data = null; }
  }
  return {
    status: response.status,
    ok: response.ok,
    data,
    error: response.ok ? null : (data && data.error) || { code: String(response.status), message: response.statusText },
    response,
  };
}

/** Creates an element: `el('p', {class: 'x', text: 'hi'}, child, ...)`. */
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v == null || v === false) continue;
    if (k === 'text') e.textContent = v;
    else if (k === 'class') e.className = v;
    else if (k.startsWith('on') && typeof v === 'function') e.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(e.dataset, v);
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children) if (c != null) e.append(c);
  return e;
}

/** The SVG icon with id `name` from icons.svg, as inline markup (decorative). */
export function icon(name) {
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('class', `icon icon-${name}`);
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('focusable', 'false');
  const path = document.createElementNS(ns, 'path');
  path.setAttribute('d', ICONS[name] || ICONS.spark);
  svg.append(path);
  return svg;
}

/** Hand-drawn 24×24 icon paths (filled, except where the CSS strokes them). */
const ICONS = {
  like: 'M12 20.5C8.3 17.9 3 13.9 3 9.1 3 6.3 5.1 4.2 7.7 4.2c1.8 0 3.3 1 4.3 2.5 1-1.5 2.5-2.5 4.3-2.5 2.6 0 4.7 2.1 4.7 4.9 0 4.8-5.3 8.8-9 11.4z',
  cheer: 'M12 2.5l2.6 6.3 6.8.5-5.2 4.4 1.6 6.6L12 16.7l-5.8 3.6 1.6-6.6-5.2-4.4 6.8-.5z',
  comment: 'M5 4h14a2 2 0 0 1 2 2v9a2 2 0 0 1-2 2h-8l-5 4v-4H5a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2z',
  share: 'M12 2.8l5.2 5.2h-3.4v6.4h-3.6V8H6.8zM4 13h2.5v5.5h11V13H20v8H4z',
  signup: 'M6 3h9l4 4v14H6zM14 3.5V8h4.5M8.8 13.2l2.2 2.2 4.3-4.6',
  spark: 'M12 3l1.9 6.1L20 12l-6.1 1.9L12 20l-1.9-6.1L4 12l6.1-2.9z',
  eye: 'M12 5c5 0 8.7 4.3 9.8 7-1.1 2.7-4.8 7-9.8 7s-8.7-4.3-9.8-7C3.3 9.3 7 5 12 5zm0 3.5a3.5 3.5 0 1 0 0 7 3.5 3.5 0 0 0 0-7z',
};
