// Types of @livetally/sdk/strings (strings.js): what a viewer reads, in English and Chinese.

export type Lang = 'en' | 'zh-CN';
/** The languages there are strings for, with their own names. */
export const LANGS: Record<Lang, string>;
/** Viewer-facing strings by language; `{name}` is filled by `text()`. */
export const STRINGS: Record<Lang, Record<string, string>>;
/** `en` or `zh-CN` for a language tag. */
export function pickLang(tag: string | null | undefined): Lang;
/** `template` with each `{name}` replaced from `vars` (left as it is when `vars` lacks it). */
export function fill(template: string, vars?: Record<string, string | number>): string;
/** The string `key` in `lang` (English when that language lacks it, else the key itself). */
export function text(lang: string, key: string, vars?: Record<string, string | number>): string;
