// Webhook receivers on /ops: the deployment's setting (GET/PUT /api/v1/webhooks), the same
// on every node. Each receiver has a URL, the event types it gets (none ticked: every
// type) and a secret that is set and never shown: the field stays empty, and an empty
// field keeps the stored secret. The server validates; its 400 names the field. ops.js
// calls `showWebhooks` once signed in.

import { t } from './i18n.js';
import { el } from './common.js';

const TYPES = ['campaign.milestone', 'campaign.peak', 'campaign.ended', 'registration.created'];

/** One receiver's row: `{id?, url, types?}` as the server showed it (none for a new one). */
function row(r, index) {
  const n = index + 1;
  const types = new Set(r.types || []);
  const boxes = TYPES.map((type) =>
    el('label', { class: 'check' },
      el('input', { type: 'checkbox', name: 'type', value: type, checked: types.has(type) }),
      ` ${type}`));
  const remove = el('button', { type: 'button', class: 'button button-quiet button-small', text: t('wh_remove') });
  const li = el('li', { class: 'receiver', dataset: { id: r.id || '' } },
    el('label', { text: `${t('wh_url')} ${n}` },
      el('input', { name: 'url', type: 'url', value: r.url || '', required: true, spellcheck: 'false', autocomplete: 'off' })),
    el('fieldset', { class: 'types' }, el('legend', { text: t('wh_types') }), ...boxes),
    el('label', { text: t('wh_secret') },
      el('input', {
        name: 'secret', type: 'password', autocomplete: 'new-password', spellcheck: 'false',
        placeholder: r.id ? t('wh_secret_set') : t('wh_secret_new'),
      })),
    remove);
  remove.addEventListener('click', () => li.remove());
  return li;
}

/** The PUT body from the rows. */
function collect(list) {
  return {
    receivers: [...list.querySelectorAll('li.receiver')].map((li) => {
      const r = { url: li.querySelector('[name=url]').value.trim() };
      if (li.dataset.id) r.id = li.dataset.id;
      const types = [...li.querySelectorAll('[name=type]:checked')].map((b) => b.value);
      if (types.length) r.types = types;
      const secret = li.querySelector('[name=secret]').value;
      if (secret) r.secret = secret;
      return r;
    }),
  };
}

function render(list, receivers) {
  list.replaceChildren(...receivers.map(row));
}

/** Loads the receivers into the section; `authed` is ops.js's operator API call. */
export async function showWebhooks(authed) {
  const form = document.getElementById('webhooks-form');
  const list = document.getElementById('receivers');
  const result = document.getElementById('webhooks-result');
  const add = document.getElementById('receiver-add');
  if (!form || !list || !result || !add) return;
  const r = await authed('/api/v1/webhooks');
  if (!r.ok || !r.data) {
    result.textContent = r.error ? r.error.message : String(r.status);
    return;
  }
  render(list, r.data.receivers);
  result.textContent = r.data.receivers.length ? '' : t('wh_none');
  add.onclick = () => list.append(row({}, list.children.length));
  form.onsubmit = async (ev) => {
    ev.preventDefault();
    const saved = await authed('/api/v1/webhooks', { method: 'PUT', body: collect(list) });
    if (saved.ok && saved.data) {
      render(list, saved.data.receivers);
      result.textContent = t('wh_saved');
    } else {
      const e = saved.error || {};
      result.textContent = e.field ? `${e.field}: ${e.message}` : (e.message || String(saved.status));
    }
  };
}
