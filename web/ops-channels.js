// Declared share channels on /ops: the live panel's editor for a campaign's
// `share_channels` (PATCH /api/v1/campaigns/{id}). Written as `wechat, weibo, x` (commas,
// spaces or new lines between names); an empty field withdraws the declaration. Once
// declared, share visits count under these names and every other `via` under `other`, so
// made-up names cannot take the real ones' places. The server validates (names, how many,
// `other`); its 400 is shown next to the field. ops.js calls `showChannels` and nothing else.

import { t } from './i18n.js';

/** `"wechat, weibo\nx"` → `["wechat", "weibo", "x"]`: split only, the server checks names. */
export function parseChannels(value) {
  return String(value).split(/[\s,，、;；]+/).filter(Boolean);
}

/** The reverse of `parseChannels`, for the editor. */
export function formatChannels(channels) {
  return (channels || []).join(', ');
}

function status(channels) {
  return channels && channels.length ? t('ch_declared', { n: channels.length }) : t('ch_none');
}

/** The live panel's editor for campaign `c`; `authed` is ops.js's operator API call and
 *  `saved(campaign)` is told the campaign as the server returned it. */
export function showChannels(c, authed, saved) {
  const form = document.getElementById('channels-form');
  const input = document.getElementById('m-channels');
  const result = document.getElementById('channels-result');
  if (!form || !input || !result) return;
  input.value = formatChannels(c.share_channels);
  input.removeAttribute('aria-invalid');
  result.textContent = status(c.share_channels);
  form.onsubmit = async (ev) => {
    ev.preventDefault();
    const body = { share_channels: parseChannels(input.value) };
    const r = await authed(`/api/v1/campaigns/${encodeURIComponent(c.id)}`, { method: 'PATCH', body });
    if (r.ok && r.data) {
      input.removeAttribute('aria-invalid');
      input.value = formatChannels(r.data.share_channels);
      result.textContent = `${t('ch_saved')} ${status(r.data.share_channels)}`;
      saved(r.data);
    } else {
      input.setAttribute('aria-invalid', 'true');
      result.textContent = r.error ? r.error.message : String(r.status);
    }
  };
}
