// The viewer page's sign-up form: one input per field the campaign declares
// (`registration_fields`), placed before the sign-up button. The page owns the request
// (its register call, later the SDK's `register(fields)`); this file owns the inputs, the
// check before sending (required, max) and the server's 400 shown next to its field.

import { lang } from './i18n.js';
import { el } from './common.js';

const TEXT = {
  en: { required: 'Required.', too_long: 'At most {n} characters.', optional: '(optional)' },
  'zh-CN': { required: '必填。', too_long: '最多 {n} 个字符。', optional: '（选填）' },
};

function text(key, n) {
  const table = TEXT[lang()] || TEXT.en;
  return (table[key] || TEXT.en[key]).replace('{n}', String(n));
}

/**
 * Renders `fields` (the campaign's declarations) into `panel` before `before`. Returns
 * `values()` (the entered values, or null after marking what is missing or too long) and
 * `showError(error)` (an API error `{field: "fields.<name>", message}`; true when it
 * belonged to one of the inputs).
 */
export function signupForm(panel, before, fields) {
  const inputs = new Map();
  if (!fields || fields.length === 0) {
    return { values: () => undefined, showError: () => false };
  }
  const box = el('div', { class: 'signup-fields', id: 'signup-fields' });
  for (const f of fields) {
    const id = `signup-f-${f.name}`;
    const input = el('input', { id, name: f.name, autocomplete: 'on', maxlength: String(f.max) });
    if (f.required) input.required = true;
    const error = el('p', { id: `${id}-error`, class: 'field-error', hidden: true });
    input.setAttribute('aria-describedby', error.id);
    const label = el('label', { for: id, text: f.required ? f.name : `${f.name} ${text('optional')}` });
    box.append(el('div', { class: 'field', 'data-field': f.name }, label, input, error));
    inputs.set(f.name, { input, error, decl: f });
  }
  panel.insertBefore(box, before);

  function mark(name, message) {
    const { input, error } = inputs.get(name);
    error.textContent = message;
    error.hidden = !message;
    if (message) input.setAttribute('aria-invalid', 'true');
    else input.removeAttribute('aria-invalid');
  }

  return {
    values() {
      const out = {};
      let first = null;
      for (const [name, { input, decl }] of inputs) {
        const v = input.value;
        let problem = '';
        if (decl.required && !v.trim()) problem = text('required');
        else if ([...v].length > decl.max) problem = text('too_long', decl.max);
        mark(name, problem);
        if (problem && !first) first = input;
        if (v !== '') out[name] = v;
      }
      if (first) { first.focus(); return null; }
      return out;
    },
    showError(error) {
      const name = error && typeof error.field === 'string' ? error.field.replace(/^fields\./, '') : '';
      if (!inputs.has(name)) return false;
      mark(name, error.message);
      inputs.get(name).input.focus();
      return true;
    },
  };
}
