// A TypeScript consumer of @livetally/sdk and @livetally/widget as installed from their
// tarballs: scripts/check-sdk-package.sh compiles it with `tsc --strict` (so the .d.ts files
// are complete and sound) and runs the SDK part under Node (so they describe the module).
import {
  LivetallyError, MAX_COUNT, VERSION, backoffDelay, connect, formatCompact, formatNumber, liveView, pageStorage, tokenClaims,
  type Client, type LiveView, type Stats, type ViewState,
} from '@livetally/sdk';
import { STRINGS, pickLang, text, type Lang } from '@livetally/sdk/strings';
import type { LivetallyWidget, WidgetState } from '@livetally/widget';

/** What a brand's page writes: a client, its events, taps. Typed, never run here. */
export function page(base: string): Client {
  const client = connect({ base, campaign: 'launch-2026', region: 'EU' });
  client.on('stats', (s: Stats) => console.log(s.viewers, s.interactions.like ?? 0));
  client.on('state', (state, info) => console.log(state, info.final, info.offline));
  client.on('error', (e: LivetallyError) => console.log(e.code, e.fatal === true));
  client.interact('like', 3).catch((e: LivetallyError) => e.code);
  client.register({ city: 'Shanghai' }).then((r) => (r.created ? r.status : 0));
  const branch = connect({ base, campaign: 'launch-2026', unit: 'GD-SZ-01' });
  branch.on('unit', (f) => console.log(f.path.map((u) => `${u.name} ${u.viewers}`).join(' › '), branch.branch?.length ?? 0));
  // @ts-expect-error: no such event
  client.on('nope', () => {});
  return client;
}

/** A view, as the React and Vue recipes use one. */
export function recipe(base: string): LiveView {
  const view = liveView({ base, campaign: 'launch-2026' });
  view.on('state', (state: ViewState) => console.log(state, view.reason, view.offline));
  view.on('counts', () => console.log(view.total('like'), view.pending()));
  view.on('campaign', (c) => console.log(c.title, c.kinds.length));
  if (view.tappable) view.interact('like').catch(() => {});
  view.on('unit', (f) => console.log(f.path.at(-1)?.name, view.branch?.at(-1)?.viewers));
  const ops = connect({ base, campaign: 'launch-2026', role: 'operator', token: 'op' });
  ops.on('units', (f) => console.log(f.parent, f.units.map((u) => [u.code, u.viewers, u.interactions.like ?? 0]), f.unassigned?.viewers));
  ops.watch(null);
  const shown: number = view.stats.viewers;
  console.log(shown, view.client?.session ?? '');
  return view;
}

/** The widget's element, as a TypeScript page finds it. */
export function widget(): WidgetState | undefined {
  const el: LivetallyWidget | null = document.querySelector('livetally-widget');
  el?.addEventListener('livetally-state', (e) => console.log(e.detail.state));
  return el?.state;
}

// Run under Node: what needs no browser.
const lang: Lang = pickLang('zh-CN');
const checks: [string, boolean][] = [
  ['VERSION', /^\d+\.\d+\.\d+$/.test(VERSION)],
  ['MAX_COUNT', MAX_COUNT === 100],
  ['backoffDelay', backoffDelay(0, () => 0) === 250],
  ['tokenClaims', tokenClaims('x') === null],
  ['formatNumber', formatNumber(1234, 'en') === '1,234'],
  ['formatCompact', formatCompact(12345, 'en') === '12.3K'],
  ['pageStorage', typeof pageStorage === 'function'],
  ['strings', text(lang, 'state_live') === STRINGS['zh-CN'].state_live],
  ['LivetallyError', new LivetallyError('x').code === 'x'],
];
const failed = checks.filter(([, ok]) => !ok).map(([name]) => name);
if (failed.length) throw new Error(`the installed SDK disagrees with its types: ${failed.join(', ')}`);
console.log(`consumer: @livetally/sdk ${VERSION} as typed`);
