// /ops, sign-ups: the registration-field editor in the create form and the export buttons
// (CSV, JSON) of the selected campaign. Mounted on import; ops.js asks it only for the
// declared fields when it sends the create form (`registrationFields()`).

import { lang } from './i18n.js';
import { session, el } from './common.js';

const MAX_FIELDS = 8;
const TOKEN_KEY = 'livetally.opsToken';

const TEXT = {
  en: {
    legend: 'Sign-up fields', hint: 'What people enter when they sign up (at most 8).',
    add: 'Add field', remove: 'Remove', name: 'Field name', max: 'Max characters', required: 'Required',
    export_csv: 'Export sign-ups (CSV)', export_json: 'Export sign-ups (JSON)',
    exported: 'Sign-ups downloaded.', failed: 'Export failed ({n}).',
  },
  'zh-CN': {
    legend: '报名字段', hint: '报名时需要填写的内容（最多 8 项）。',
    add: '添加字段', remove: '删除', name: '字段名', max: '最多字符数', required: '必填',
    export_csv: '导出报名（CSV）', export_json: '导出报名（JSON）',
    exported: '报名数据已下载。', failed: '导出失败（{n}）。',
  },
};

function text(key, n) {
  const table = TEXT[lang()] || TEXT.en;
  return (table[key] || TEXT.en[key]).replace('{n}', String(n));
}

const $ = (id) => document.getElementById(id);
let rows;

function addRow() {
  if (rows.children.length >= MAX_FIELDS) return;
  const n = rows.children.length + 1;
  const row = el('li', { class: 'signup-field-row' },
    el('input', { name: 'rf-name', 'aria-label': `${text('name')} ${n}`, autocomplete: 'off', spellcheck: 'false', placeholder: 'phone' }),
    el('input', { name: 'rf-max', type: 'number', min: '1', max: '256', value: '256', 'aria-label': `${text('max')} ${n}` }),
    el('label', { class: 'radio' }, el('input', { name: 'rf-required', type: 'checkbox' }), ` ${text('required')}`),
    el('button', { type: 'button', class: 'button button-quiet', text: text('remove'), onclick: () => { row.remove(); sync(); } }));
  rows.append(row);
  sync();
  row.querySelector('input').focus();
}

function sync() {
  $('rf-add').disabled = rows.children.length >= MAX_FIELDS;
}

/** The declared fields as the create body takes them (empty rows left out). */
export function registrationFields() {
  if (!rows) return [];
  return [...rows.children].map((row) => ({
    name: row.querySelector('[name="rf-name"]').value.trim(),
    max: Number(row.querySelector('[name="rf-max"]').value) || 256,
    required: row.querySelector('[name="rf-required"]').checked,
  })).filter((f) => f.name !== '');
}

function mountEditor() {
  const form = $('create');
  if (!form) return;
  rows = el('ol', { id: 'rf-rows', class: 'signup-field-rows' });
  const box = el('fieldset', { class: 'field', 'data-field': 'registration_fields', id: 'f-registration_fields' },
    el('legend', { text: text('legend') }),
    el('p', { class: 'hint', text: text('hint') }),
    rows,
    el('button', { id: 'rf-add', type: 'button', class: 'button button-quiet', text: text('add'), onclick: addRow }));
  form.insertBefore(box, $('create-error'));
  form.addEventListener('reset', () => { rows.replaceChildren(); sync(); });
}

async function exportSignups(format) {
  const id = $('panel') && $('panel').dataset.campaign;
  if (!id) return;
  const out = $('panel-result');
  let response;
  try {
    response = await fetch(`/api/v1/campaigns/${encodeURIComponent(id)}/registrations?format=${format}`, {
      headers: { Authorization: `Bearer ${session.get(TOKEN_KEY) || ''}` },
      cache: 'no-store',
    });
  } catch {
    out.textContent = text('failed', 0);
    return;
  }
  if (!response.ok) {
    out.textContent = text('failed', response.status);
    return;
  }
  const blob = await response.blob();
  const m = /filename="?([^";]+)"?/.exec(response.headers.get('content-disposition') || '');
  const a = el('a', { href: URL.createObjectURL(blob), download: m ? m[1] : `${id}-registrations.${format}` });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
  out.textContent = text('exported');
}

function mountExport() {
  const after = $('download');
  if (!after) return;
  const buttons = ['csv', 'json'].map((format) => el('button', {
    id: `export-${format}`, type: 'button', class: 'button button-quiet', text: text(`export_${format}`),
    onclick: () => exportSignups(format),
  }));
  after.after(...buttons);
}

mountEditor();
mountExport();
