// Webhook milestones on /ops: the create form's field and the live panel's editor. Written
// as `viewers: 1000, 1000000; like: 100000` (metric, colon, thresholds; `;` or a new line
// between metrics). The server validates (metrics must be viewers, peak_viewers or one of
// the campaign's kinds); its 400 is shown next to the field. ops.js calls the three
// exported hooks and nothing else.

import { lang } from './i18n.js';

const TEXT = {
  en: {
    bad: 'Write metric: thresholds, e.g. "viewers: 1000; like: 100000" (positive whole numbers).',
    saved: 'Milestones saved.',
    none: 'No milestones: no campaign.milestone webhooks.',
  },
  'zh-CN': {
    bad: '格式为“指标: 阈值”，例如 “viewers: 1000; like: 100000”（正整数）。',
    saved: '里程碑已保存。',
    none: '没有里程碑：不会发送 campaign.milestone 通知。',
  },
};

function text(key) {
  return (TEXT[lang()] || TEXT.en)[key];
}

/** `"viewers: 1000, 1e6; like: 100000"` → `{viewers: [1000, 1000000], like: [100000]}`;
 *  `null` when the text is not in that shape. Empty text is `{}`. */
export function parseMilestones(value) {
  const out = {};
  for (const part of String(value).split(/[;\n；]+/).map((s) => s.trim()).filter(Boolean)) {
    const m = part.match(/^([a-z][a-z0-9_]*)\s*[:：]\s*(.+)$/);
    if (!m) return null;
    const nums = m[2].split(/[\s,，、]+/).filter(Boolean).map((n) => Number(n.replace(/_/g, '')));
    if (!nums.length || nums.some((n) => !Number.isSafeInteger(n) || n < 1)) return null;
    out[m[1]] = [...(out[m[1]] || []), ...nums];
  }
  return out;
}

/** The reverse of `parseMilestones`, for the editor. */
export function formatMilestones(milestones) {
  return Object.entries(milestones || {})
    .map(([metric, thresholds]) => `${metric}: ${thresholds.join(', ')}`)
    .join('; ');
}

/** The create form's body gets `milestones` from its `milestones` field. Returns an error
 *  message for the field, or null. */
export function addMilestones(body, data) {
  const raw = String(data.get('milestones') || '').trim();
  if (!raw) return null;
  const parsed = parseMilestones(raw);
  if (!parsed) return text('bad');
  body.milestones = parsed;
  return null;
}

/** The live panel's editor for campaign `c`; `authed` is ops.js's operator API call and
 *  `saved(campaign)` is told the campaign as the server returned it. */
export function showMilestones(c, authed, saved) {
  const form = document.getElementById('milestones-form');
  const input = document.getElementById('m-milestones');
  const result = document.getElementById('milestones-result');
  if (!form || !input || !result) return;
  input.value = formatMilestones(c.milestones);
  input.removeAttribute('aria-invalid');
  result.textContent = Object.keys(c.milestones || {}).length ? '' : text('none');
  form.onsubmit = async (ev) => {
    ev.preventDefault();
    const milestones = parseMilestones(input.value);
    if (!milestones) {
      input.setAttribute('aria-invalid', 'true');
      result.textContent = text('bad');
      return;
    }
    const r = await authed(`/api/v1/campaigns/${encodeURIComponent(c.id)}`, { method: 'PATCH', body: { milestones } });
    if (r.ok && r.data) {
      input.removeAttribute('aria-invalid');
      input.value = formatMilestones(r.data.milestones);
      result.textContent = text('saved');
      saved(r.data);
    } else {
      input.setAttribute('aria-invalid', 'true');
      result.textContent = r.error ? r.error.message : String(r.status);
    }
  };
}
