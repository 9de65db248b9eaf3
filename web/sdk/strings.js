// What a viewer reads, in English and Simplified Chinese: the one table the viewer page
// (through web/i18n.js, which adds the pages' own strings) and <livetally-widget> share.
// Part of the SDK package (`@livetally/sdk/strings`); a node serves it at
// /sdk/v1/strings.js, beside the SDK, for the widget it serves at /embed/v1.js.

/** The languages there are strings for. */
export const LANGS = { en: 'English', 'zh-CN': '简体中文' };

/** Viewer-facing strings by language; `{name}` is filled from the vars of `text()`. */
export const STRINGS = {
  en: {
    state_loading: 'Loading…',
    state_connecting: 'Connecting…',
    state_live: 'Live',
    state_reconnecting: 'Reconnecting…',
    state_offline: 'Offline: your taps are kept',
    state_ended: 'Event ended',
    state_missing: 'Event not found',
    state_private: 'Invite needed',
    state_expired: 'Invite expired',
    state_closed: 'Disconnected',
    watching_now: 'watching now',
    viewers_announce: '{n} watching now',
    branch_watching: '{name} · {n} watching',
    branch_label: 'Your branch: {path}',
    peak: 'watched at the peak',
    reactions: 'Reactions',
    widget_label: 'Live audience: {title}',
    kind_like: 'Like',
    kind_cheer: 'Cheer',
    kind_comment: 'Comment',
    kind_share: 'Share',
  },
  'zh-CN': {
    state_loading: '加载中…',
    state_connecting: '连接中…',
    state_live: '直播中',
    state_reconnecting: '重新连接中…',
    state_offline: '网络已断开，点赞会保留',
    state_ended: '活动已结束',
    state_missing: '未找到活动',
    state_private: '需要邀请',
    state_expired: '邀请已过期',
    state_closed: '已断开',
    watching_now: '人正在观看',
    viewers_announce: '{n} 人正在观看',
    branch_watching: '{name} · {n} 人正在观看',
    branch_label: '你所在的组织：{path}',
    peak: '人在高峰时观看',
    reactions: '互动',
    widget_label: '实时观众：{title}',
    kind_like: '点赞',
    kind_cheer: '喝彩',
    kind_comment: '评论',
    kind_share: '分享',
  },
};

/** `en` or `zh-CN` for a language tag (an attribute, the page's, the browser's). */
export function pickLang(tag) {
  return /^zh\b/i.test(tag || '') ? 'zh-CN' : 'en';
}

/** `template` with each `{name}` replaced from `vars` (left as it is when `vars` lacks it). */
export function fill(template, vars) {
  return vars ? template.replace(/\{(\w+)\}/g, (m, k) => (k in vars ? String(vars[k]) : m)) : template;
}

/** The string `key` in `lang` (English when that language lacks it, else the key itself). */
export function text(lang, key, vars) {
  const table = STRINGS[lang] || STRINGS.en;
  return fill(table[key] ?? STRINGS.en[key] ?? key, vars);
}
