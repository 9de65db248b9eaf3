// English and Simplified Chinese. The language follows the browser until the person picks
// one, which is remembered. Static text carries data-i18n="key" (and data-i18n-label for
// aria-label); dynamic text calls t(key, {vars}).

import { local } from './common.js';
import { LANGS, STRINGS as AUDIENCE, fill } from './strings.js';

export { LANGS };

const SAVED_KEY = 'livetally.lang';

/** The pages' own strings; what a viewer reads (states, kinds, counts) is in strings.js. */
const en = {
  language: 'Language',
  skip_to_reactions: 'Skip to reactions',
  skip_to_content: 'Skip to content',

  retry_now: 'Retry now',
  stream_label: 'Live stream',
  stream_placeholder: 'The stream will appear here',
  stream_unplayable: 'This stream cannot play in this browser.',
  stream_open: 'Open the stream',
  share_title: 'Share this event',
  share_via: 'Share via',
  channel_wechat: 'WeChat',
  channel_weibo: 'Weibo',
  channel_x: 'X',
  channel_link: 'Link',
  channel_other: 'Other',
  share: 'Share',
  share_copy_hint: 'Copy this link:',
  share_done: 'Thanks for sharing!',
  share_copied: 'Link copied. Paste it anywhere to share.',
  share_manual: 'Copy the link above to share it.',
  signup_title: 'Stay in the loop',
  signup_text: 'Sign up to hear about what comes next.',
  signup: 'Sign up',
  signup_busy: 'Signing you up…',
  signup_new: 'You are signed up. Thank you!',
  signup_again: 'You are already signed up.',
  signup_ended: 'Sign-up has closed: this event has ended.',
  signup_failed: 'Could not sign you up. Please try again.',
  footer_viewer: 'Counts are live and anonymous.',
  notice_ended_title: 'This event has ended',
  notice_ended_text: 'Thanks for watching. At its peak, {peak} people watched together.',
  notice_missing_title: 'Event not found',
  notice_missing_text: 'Check the link you followed: there is no event here.',
  notice_private_title: 'This event is invite-only',
  notice_private_text: 'Open it with the invite link you were sent.',
  notice_expired_title: 'Your invite has expired',
  notice_expired_text: 'Ask the organiser for a new invite link.',
  notice_wrong_campaign_title: 'This invite is not valid here',
  notice_wrong_campaign_text: 'Open the event with the exact invite link you were sent.',

  ops_brand: 'operator',
  ready_unknown: 'Checking node…',
  ready_ready: 'Node ready',
  ready_degraded: 'Node degraded',
  ready_down: 'Node unreachable',
  banner_degraded: 'The store is not answering. Viewers stay connected and counts are buffered ({pending} pending); numbers here will catch up when it returns.',
  banner_shutting_down: 'This node is shutting down. The dashboard reconnects to another node.',
  banner_down: 'The node cannot be reached. Numbers below are frozen until it is back.',
  sign_out: 'Sign out',
  signin_title: 'Operator sign-in',
  signin_text: 'Paste the node\'s operator token. It is kept for this tab only.',
  token_label: 'Operator token',
  sign_in: 'Sign in',
  signin_wrong: 'That token was refused.',
  signin_rejected: 'The node refused the token; please sign in again.',
  token_required: 'Enter the operator token.',
  node_unreachable: 'The node cannot be reached.',
  campaigns: 'Campaigns',
  refresh: 'Refresh',
  no_campaigns: 'No campaigns yet. Create one below.',
  badge_live: 'live',
  badge_ended: 'ended',
  access_token_short: 'invite-only',
  access_public_short: 'public',
  create_title: 'New campaign',
  f_id: 'ID',
  f_id_hint: 'Lowercase letters, digits and dashes; used in links.',
  f_title: 'Title',
  f_stream_url: 'Stream URL (optional)',
  f_kinds: 'Interaction kinds',
  f_kinds_hint: 'Comma-separated; leave empty for the defaults.',
  f_regions: 'Regions (optional)',
  f_regions_hint: 'Comma-separated; viewers elsewhere count as "other".',
  f_milestones: 'Webhook milestones (optional)',
  f_milestones_hint: 'e.g. viewers: 1000, 1000000; like: 100000',
  save_milestones: 'Save milestones',
  f_access: 'Access',
  access_public: 'Public: anyone with the link',
  access_token: 'Invite-only: join links minted here',
  create: 'Create campaign',
  created: 'Created {id}.',
  id_taken: 'A campaign with this ID already exists.',
  select_campaign: 'Select a campaign to watch it live.',
  open_viewer: 'Viewer page',
  download_csv: 'Download CSV',
  downloaded: 'Report downloaded.',
  download_failed: 'Report download failed ({status}).',
  mint_token: 'Mint join link',
  join_link: 'Join link',
  copy: 'Copy',
  copied: 'Copied.',
  copy_manual: 'Select the link and copy it.',
  expires: 'Expires {time}.',
  end_campaign: 'End campaign',
  confirm_end_title: 'End this campaign?',
  confirm_end_text: '“{title}” will stop counting and every viewer is disconnected. This cannot be undone.',
  cancel: 'Cancel',
  ended_ok: 'Campaign ended.',
  live_connecting: 'connecting…',
  live_live: 'live',
  live_reconnecting: 'reconnecting…',
  live_ended: 'ended',
  m_viewers: 'Viewers now',
  m_peak: 'Peak',
  m_unique: 'Unique viewers',
  m_rate: 'Interactions / s',
  m_registrations: 'Sign-ups',
  m_shares: 'Share visits',
  peak_at: 'at {time}',
  interactors: '{n} people interacted',
  chart_title: 'Viewers over time',
  chart_label: 'Viewers over time: {last} now, {peak} at most.',
  by_kind: 'Interactions by kind',
  by_region: 'Viewers by region',
  by_region_peak: 'Viewers by region at peak',
  by_channel: 'Share visits by channel',
  region_unknown: 'unknown',
  region_other: 'other',
  nodes: 'Nodes',
  node: 'Node',
  viewers: 'Viewers',
  share_of_viewers: 'Share',
  updated: 'Updated',
  stale: 'stale',
  seconds_ago: '{n} s ago',
  no_data: 'No data yet',

  hero_title: 'Every viewer, every like, live.',
  hero_text: 'livetally counts who is watching your launch, festival or sign-up drive right now, what they do and how many distinct people did it. The numbers go live to every viewer and to your operators, and stay for the after-event report.',
  open_ops: 'Open the operator dashboard',
  features: 'Features',
  f1_title: 'Live counts',
  f1_text: 'Concurrent, peak and unique viewers, by region and by node, within a second.',
  f2_title: 'Engagement that adds up',
  f2_text: 'Likes, cheers, comments and shares are acknowledged: never lost, never doubled, even across reconnects.',
  f3_title: 'Built for a crowd',
  f3_text: 'Many nodes share one truth in Redis; a single node runs on its own memory store.',
  join_title: 'Join a campaign',
  join_label: 'Campaign ID',
  join: 'Join',
  footer_landing: 'One binary. No build step. Your audience, counted.',

  wh_title: 'Webhook receivers',
  wh_hint: 'Every node sends events to these. A secret is set once and never shown.',
  wh_url: 'URL',
  wh_types: 'Event types (none ticked: every type)',
  wh_secret: 'Secret',
  wh_secret_set: 'Set (leave empty to keep it)',
  wh_secret_new: 'At least 16 characters',
  wh_remove: 'Remove',
  wh_add: 'Add receiver',
  wh_save: 'Save receivers',
  wh_saved: 'Receivers saved.',
  wh_none: 'No receivers: no webhook events are queued.',

  ch_label: 'Declared share channels',
  ch_hint: 'Comma-separated, e.g. wechat, weibo, x. Visits through any other channel count as "Other".',
  ch_save: 'Save share channels',
  ch_saved: 'Share channels saved.',
  ch_declared: '{n} declared: every other channel counts as "Other".',
  ch_none: 'None declared: the first channel names used are counted, later ones as "Other".',
};

const zh = {
  language: '语言',
  skip_to_reactions: '跳到互动按钮',
  skip_to_content: '跳到正文',

  retry_now: '立即重试',
  stream_label: '直播画面',
  stream_placeholder: '直播画面将在这里显示',
  stream_unplayable: '此浏览器无法播放该直播。',
  stream_open: '打开直播',
  share_title: '分享这场活动',
  share_via: '分享到',
  channel_wechat: '微信',
  channel_weibo: '微博',
  channel_x: 'X',
  channel_link: '链接',
  channel_other: '其他',
  share: '分享',
  share_copy_hint: '复制此链接：',
  share_done: '感谢分享！',
  share_copied: '链接已复制，粘贴即可分享。',
  share_manual: '请复制上面的链接进行分享。',
  signup_title: '获取后续消息',
  signup_text: '报名后，我们会告诉你接下来的安排。',
  signup: '立即报名',
  signup_busy: '正在报名…',
  signup_new: '报名成功，谢谢！',
  signup_again: '你已经报过名了。',
  signup_ended: '活动已结束，报名已关闭。',
  signup_failed: '报名失败，请重试。',
  footer_viewer: '计数实时、匿名。',
  notice_ended_title: '活动已结束',
  notice_ended_text: '感谢观看！最高峰时有 {peak} 人同时观看。',
  notice_missing_title: '未找到该活动',
  notice_missing_text: '请检查链接：这里没有活动。',
  notice_private_title: '该活动仅限受邀观众',
  notice_private_text: '请使用收到的邀请链接打开。',
  notice_expired_title: '邀请链接已过期',
  notice_expired_text: '请向主办方索取新的邀请链接。',
  notice_wrong_campaign_title: '邀请链接无效',
  notice_wrong_campaign_text: '请使用收到的完整邀请链接打开活动。',

  ops_brand: '运营后台',
  ready_unknown: '正在检查节点…',
  ready_ready: '节点正常',
  ready_degraded: '节点降级',
  ready_down: '无法连接节点',
  banner_degraded: '存储暂时无响应。观众保持连接，计数已缓存（{pending} 条待写入）；恢复后这里的数字会补上。',
  banner_shutting_down: '该节点正在关闭，后台将重新连接到其他节点。',
  banner_down: '无法连接节点，下面的数字在恢复前不会更新。',
  sign_out: '退出',
  signin_title: '运营登录',
  signin_text: '粘贴节点的运营令牌。令牌只保存在当前标签页。',
  token_label: '运营令牌',
  sign_in: '登录',
  signin_wrong: '令牌被拒绝。',
  signin_rejected: '节点拒绝了令牌，请重新登录。',
  token_required: '请输入运营令牌。',
  node_unreachable: '无法连接节点。',
  campaigns: '活动',
  refresh: '刷新',
  no_campaigns: '还没有活动，请在下方创建。',
  badge_live: '进行中',
  badge_ended: '已结束',
  access_token_short: '仅限受邀',
  access_public_short: '公开',
  create_title: '新建活动',
  f_id: 'ID',
  f_id_hint: '小写字母、数字和短横线，用于链接。',
  f_title: '标题',
  f_stream_url: '直播地址（可选）',
  f_kinds: '互动类型',
  f_kinds_hint: '用逗号分隔；留空使用默认值。',
  f_regions: '地区（可选）',
  f_regions_hint: '用逗号分隔；其他地区的观众计为“other”。',
  f_milestones: 'Webhook 里程碑（可选）',
  f_milestones_hint: '例如 viewers: 1000, 1000000; like: 100000',
  save_milestones: '保存里程碑',
  f_access: '访问权限',
  access_public: '公开：任何有链接的人',
  access_token: '仅限受邀：使用此处生成的加入链接',
  create: '创建活动',
  created: '已创建 {id}。',
  id_taken: '已有相同 ID 的活动。',
  select_campaign: '选择一个活动查看实时数据。',
  open_viewer: '观众页面',
  download_csv: '下载 CSV',
  downloaded: '报告已下载。',
  download_failed: '报告下载失败（{status}）。',
  mint_token: '生成加入链接',
  join_link: '加入链接',
  copy: '复制',
  copied: '已复制。',
  copy_manual: '请选中链接并复制。',
  expires: '{time} 过期。',
  end_campaign: '结束活动',
  confirm_end_title: '确定结束该活动？',
  confirm_end_text: '“{title}”将停止计数，所有观众都会断开连接。此操作无法撤销。',
  cancel: '取消',
  ended_ok: '活动已结束。',
  live_connecting: '连接中…',
  live_live: '实时',
  live_reconnecting: '重新连接中…',
  live_ended: '已结束',
  m_viewers: '当前观众',
  m_peak: '峰值',
  m_unique: '独立观众',
  m_rate: '每秒互动',
  m_registrations: '报名',
  m_shares: '分享访问',
  peak_at: '于 {time}',
  interactors: '{n} 人参与互动',
  chart_title: '观众人数变化',
  chart_label: '观众人数变化：当前 {last}，最高 {peak}。',
  by_kind: '各类互动',
  by_region: '各地区观众',
  by_region_peak: '峰值时各地区观众',
  by_channel: '各渠道分享访问',
  region_unknown: '未知',
  region_other: '其他',
  nodes: '节点',
  node: '节点',
  viewers: '观众',
  share_of_viewers: '占比',
  updated: '更新',
  stale: '已过期',
  seconds_ago: '{n} 秒前',
  no_data: '暂无数据',

  hero_title: '每位观众、每个赞，实时可见。',
  hero_text: 'livetally 实时统计谁在观看你的发布会、线上节日或报名活动，他们做了什么，有多少不同的人参与。数字实时推送给每位观众和运营人员，并保留用于活动后的报告。',
  open_ops: '打开运营后台',
  features: '功能',
  f1_title: '实时计数',
  f1_text: '同时在线、峰值与独立观众，按地区和节点划分，一秒内更新。',
  f2_title: '互动分毫不差',
  f2_text: '点赞、喝彩、评论和分享都会被确认：即使重新连接，也不丢失、不重复。',
  f3_title: '为海量观众而建',
  f3_text: '多个节点通过 Redis 共享同一份数据；单个节点可使用内置内存存储独立运行。',
  join_title: '加入活动',
  join_label: '活动 ID',
  join: '加入',
  footer_landing: '一个程序，无需构建，观众尽在掌握。',

  wh_title: 'Webhook 接收端',
  wh_hint: '每个节点都会把事件发送到这些地址。密钥只需设置一次，之后不再显示。',
  wh_url: '地址',
  wh_types: '事件类型（都不勾选：全部类型）',
  wh_secret: '密钥',
  wh_secret_set: '已设置（留空则保持不变）',
  wh_secret_new: '至少 16 个字符',
  wh_remove: '移除',
  wh_add: '添加接收端',
  wh_save: '保存接收端',
  wh_saved: '接收端已保存。',
  wh_none: '没有接收端：不会排队任何 webhook 事件。',

  ch_label: '声明的分享渠道',
  ch_hint: '用逗号分隔，例如 wechat, weibo, x。其他渠道的访问计入“其他”。',
  ch_save: '保存分享渠道',
  ch_saved: '分享渠道已保存。',
  ch_declared: '已声明 {n} 个：其他渠道都计入“其他”。',
  ch_none: '未声明：按最先出现的渠道名计数，之后的计入“其他”。',
};

/** One table: the shared viewer strings and the pages' own, by language. */
const STRINGS = { en: { ...AUDIENCE.en, ...en }, 'zh-CN': { ...AUDIENCE['zh-CN'], ...zh } };
let current = 'en';

/** The page's language: `en` or `zh-CN`. */
export function lang() {
  return current;
}

function detect() {
  const saved = local.get(SAVED_KEY);
  if (saved && STRINGS[saved]) return saved;
  const prefs = navigator.languages && navigator.languages.length ? navigator.languages : [navigator.language || 'en'];
  for (const l of prefs) {
    const low = String(l).toLowerCase();
    if (low.startsWith('zh')) return 'zh-CN';
    if (low.startsWith('en')) return 'en';
  }
  return 'en';
}

/** The text for `key` in the current language, with `{name}` replaced from `vars`. */
export function t(key, vars) {
  return fill(STRINGS[current][key] ?? STRINGS.en[key] ?? key, vars);
}

/** Fills every `data-i18n` element under `root` and sets `<html lang>`. */
export function applyI18n(root = document) {
  document.documentElement.lang = current;
  for (const e of root.querySelectorAll('[data-i18n]')) e.textContent = t(e.dataset.i18n);
  for (const e of root.querySelectorAll('[data-i18n-label]')) e.setAttribute('aria-label', t(e.dataset.i18nLabel));
  for (const e of root.querySelectorAll('[data-i18n-ph]')) e.setAttribute('placeholder', t(e.dataset.i18nPh));
}

/** Picks the language, fills the switcher and the page; `onChange` runs after a switch. */
export function initLang(select, onChange) {
  current = detect();
  if (select) {
    select.replaceChildren();
    for (const [code, name] of Object.entries(LANGS)) {
      const o = document.createElement('option');
      o.value = code;
      o.lang = code;
      o.textContent = name;
      select.append(o);
    }
    select.value = current;
    select.addEventListener('change', () => {
      if (!STRINGS[select.value]) return;
      current = select.value;
      local.set(SAVED_KEY, current);
      onChange();
    });
  }
  applyI18n();
}
