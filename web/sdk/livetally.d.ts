// Types of @livetally/sdk (livetally.js). The wire format is docs/protocol.md.

export const VERSION: string;
/** The largest `count` of one `interact()` (and of one message on the wire). */
export const MAX_COUNT: 100;

/** connecting: a socket is being opened; open: welcomed, counting; closed: no socket (see
 * `StateInfo.final`: retrying, or stopped for good); ended: the campaign is over. */
export type State = 'connecting' | 'open' | 'closed' | 'ended';

export interface ConnectOptions {
  /** The livetally node or its load balancer, e.g. `https://live.example.com`. Default:
   * the page's own origin. */
  base?: string;
  /** The campaign id (`^[a-z0-9][a-z0-9-]{0,62}$`). */
  campaign: string;
  /** A join token (JWT) for `access:"token"` campaigns, or the operator token with
   * `role: 'operator'`. With a `sub` claim the viewer is `sub` and no `viewer` is sent. */
  token?: string;
  /** A stable anonymous viewer id (the protocol's viewer-id pattern, docs/protocol.md). Default: one generated once
   * and kept in localStorage (`livetally.viewer`), shared by every campaign and tab. */
  viewer?: string;
  /** A session id to resume (same pattern). Default: one per tab, kept across reloads;
   * give one only if the page manages sessions itself (one client per session). */
  session?: string;
  /** The viewer's region (`^[A-Za-z0-9-]{1,16}$`); a token claim or the edge's header
   * takes precedence. */
  region?: string;
  /** The viewer's unit in the campaign's organisation (a unit code, `^[A-Za-z0-9_-]{1,32}$`),
   * sent as `?unit=` on every socket it opens and with `register()`. Default: the page's
   * own `?unit=` when it is a unit code; `''` sends none. Unverified: anyone can pick any
   * unit this way. A join token's `unit` claim takes precedence and is the verified way; a
   * code the org lacks counts under `unassigned`. */
  unit?: string | null;
  /** `'operator'`: an operator watcher (the /ops dashboard): never counted, gets the
   * operator stats (regions, channels, nodes), cannot interact; `token` is the operator
   * token. Default `'viewer'`. */
  role?: 'viewer' | 'operator';
  /** What the SDK uses of the browser, for tests and other runtimes; any member may be
   * left out. */
  env?: Partial<Env>;
}

export interface Env {
  WebSocket: { new (url: string): WebSocketLike };
  fetch: typeof fetch;
  localStorage: StorageLike | null;
  sessionStorage: StorageLike | null;
  /** `navigator.locks`; without it tabs cannot be told apart before the server does. */
  locks: { request(name: string, options: { ifAvailable: boolean }, cb: (lock: unknown) => unknown): Promise<unknown> } | undefined;
  crypto: { getRandomValues(a: Uint8Array): Uint8Array };
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
  now(): number;
  random(): number;
  onLine(): boolean;
  /** Receives `online` / `offline` listeners (the window). */
  window: EventTargetLike | null;
  /** Receives a `visibilitychange` listener; has `visibilityState`. */
  document: (EventTargetLike & { visibilityState?: string }) | null;
  location: { href: string } | null;
}

export interface WebSocketLike {
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number }) => void) | null;
}
export interface StorageLike {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
  key(i: number): string | null;
  readonly length: number;
}
export interface EventTargetLike {
  addEventListener(type: string, fn: () => void): void;
  removeEventListener(type: string, fn: () => void): void;
}

/** The live numbers, as pushed each tick (`type: "stats"`). */
export interface Stats {
  type: 'stats';
  campaign: string;
  at?: number;
  viewers: number;
  peak_viewers: number;
  unique_viewers: number;
  interactors: number;
  interactions: Record<string, number>;
  registrations: number;
  share_visits: number;
  /** Operator watchers only. */
  peak_at?: number | null;
  regions?: Record<string, number>;
  share_visits_by_channel?: Record<string, number>;
  nodes?: { node: string; viewers: number; updated_at: number }[];
}

export interface Welcome {
  type: 'welcome';
  campaign: string;
  role?: 'viewer' | 'operator';
  viewer: string;
  session: string;
  /**
   * Highest seq the store holds for the session. `null` while the server cannot reach its
   * store (an outage): the client then sends nothing until the first `ack`, which carries
   * the stored value (the SDK does this itself; `interact()` still queues taps).
   */
  acked_seq: number | null;
  tick_ms: number;
  stats: Omit<Stats, 'type' | 'campaign'>;
}

/** One unit of a viewer's branch, as the `unit` frame lists it. */
export interface BranchUnit {
  code: string;
  /** The org's name for it, in any script (e.g. `广东省`). */
  name: string;
  /** Viewers now in this unit and every unit below it. */
  viewers: number;
}

/** A viewer's own branch (`type: "unit"`): sent to a socket with a unit, at most every 5 s. */
export interface UnitFrame {
  type: 'unit';
  /** From the top-level unit down to the deepest level counted live (`--unit-peak-depth`). */
  path: BranchUnit[];
}

/** One unit's numbers (its own and every unit's below it), as the units route lists them. */
export interface UnitNumbers {
  code: string;
  name: string;
  /** 1 = top. */
  level: number;
  viewers: number;
  sessions: number;
  /** By kind, e.g. `{ like: 3 }`. */
  interactions: Record<string, number>;
  registrations: number;
  share_visits: number;
  /** Units at the levels with peaks (`--unit-peak-depth`, default 3) only. */
  peak_viewers?: number;
}

/** The children of a watched unit (`type: "units"`), each tick in which they changed: the
 * body of `GET /api/v1/campaigns/{id}/units?parent=`. */
export interface UnitsFrame {
  type: 'units';
  at: number;
  /** The watched unit; null for the top level. */
  parent: string | null;
  /** Sorted by viewers, most first. */
  units: UnitNumbers[];
  /** Viewers with no unit or one the org lacks: at the top level only. */
  unassigned?: UnitNumbers;
  next_cursor: string | null;
}

export interface Ack {
  /** Every seq up to this one is durably counted. */
  seq: number;
  /** Interactions this ack settled, by kind. */
  settled: Record<string, number>;
}

export interface StateInfo {
  /** Reconnect attempts since the last welcome. */
  attempt: number;
  /** True once the client stopped for good (close(), a fatal error, or the end). */
  final: boolean;
  /** The browser says it is offline (the client waits for `online` before retrying). */
  offline: boolean;
  /** The close code of the socket that just closed. */
  code?: number;
}

/**
 * `code`: for `interact()` rejections `campaign_ended`, `closed`, `unknown_kind`,
 * `bad_count`, `not_a_viewer`, `session_taken`; for `register()` `campaign_ended`,
 * `rate_limited` (with `retryAfter`), `invalid` (with `field`), `forbidden`, `network`...;
 * on the `error` event the server's codes (`rate_limited`, `seq_gap`, ...) and, with
 * `fatal: true` (the client stopped), `not_found`, `token_required`, `token_expired`,
 * `token_invalid`, `unauthorized` (operator token), `session_in_use`, `session_taken`
 * (a `session` you gave was resumed by another client twice).
 */
export class LivetallyError extends Error {
  code: string;
  fatal?: boolean;
  status?: number;
  field?: string;
  retryAfter?: number;
  seq?: number;
}

export interface Events {
  welcome: (msg: Welcome) => void;
  /** Each stats frame, and the welcome's stats. */
  stats: (stats: Stats) => void;
  ack: (ack: Ack) => void;
  state: (state: State, info: StateInfo) => void;
  error: (error: LivetallyError) => void;
  /** The number of unacknowledged interactions, after each change (a tap, an ack, a
   * welcome) and at start when a reload finds some. */
  pending: (count: number) => void;
  /** The viewer's branch (a socket with a unit, in a campaign with an org). */
  unit: (frame: UnitFrame) => void;
  /** Operators: the watched unit's children (see `watch()`). */
  units: (frame: UnitsFrame) => void;
}

export interface Client {
  readonly campaign: string;
  readonly state: State;
  /** The viewer id (the token's `sub`, the server's after the welcome). '' for operators. */
  readonly viewer: string;
  /** The session id, once the ledger is claimed. */
  readonly session: string;
  /** The highest acknowledged seq of the session. */
  readonly acked: number;
  /** The latest stats. */
  readonly stats: Stats | null;
  /** The server's tick. */
  readonly tickMs: number;
  /** The unit sent: the `unit` option, else the page's `?unit=` ('' for none). */
  readonly unit: string;
  /** The viewer's branch from the last `unit` frame, top first; null before one came. */
  readonly branch: BranchUnit[] | null;
  /** Resolves once the client has claimed its ledger and opened its first socket. */
  readonly ready: Promise<void>;
  /** Subscribes; returns the unsubscribe function. */
  on<E extends keyof Events>(event: E, fn: Events[E]): () => void;
  /** Interactions not acknowledged yet, of `kind` or of every kind. */
  pending(kind?: string): number;
  /**
   * `count` (1–100) interactions of `kind`. Taps within 250 ms go out as one message. Kept in
   * localStorage until acknowledged and resent after reconnects and reloads: counted exactly
   * once. Resolves when acknowledged; rejects with `campaign_ended` if the campaign ends
   * first, `closed` after close().
   */
  interact(kind: string, count?: number): Promise<void>;
  /** Signs the viewer up (`POST …/registrations`, with `?token=` when the client has one). */
  register(fields?: Record<string, string>): Promise<{ created: boolean; status: 200 | 201 }>;
  /**
   * Operators: follows the children of `unit` (null: the top-level units and `unassigned`),
   * reported by the `units` event each tick in which they changed; asked again after every
   * reconnect. Throws `not_an_operator` for a viewer, `bad_unit` for a malformed code.
   */
  watch(unit: string | null): void;
  /** Reconnects now, skipping the backoff (a "retry" button). */
  reconnect(): void;
  /** Closes for good; unacknowledged interactions stay stored for the next page. */
  close(): void;
}

/** Starts a client (it connects in the background). Throws a LivetallyError at once for a
 * malformed option: `bad_campaign`, `bad_viewer`, `bad_session`, `bad_region`, `bad_unit`,
 * `bad_base`. */
export function connect(options: ConnectOptions): Client;
/** Reconnect delay for attempt `attempt` (0-based): exponential, capped, equal jitter. */
export function backoffDelay(attempt: number, random?: () => number, base?: number, cap?: number): number;
/** The claims of a JWT, unverified (null when unreadable). */
export function tokenClaims(token: string): Record<string, unknown> | null;
export function randomId(bytes?: number): string;

/** Storage that never throws: in memory for the page where the browser refuses the real one. */
export interface SafeStorage {
  get(key: string): string | null;
  set(key: string, value: string | number | boolean): void;
  remove(key: string): void;
  keys(): string[];
  getJSON(key: string): unknown;
  setJSON(key: string, value: unknown): void;
}
/** The page's `localStorage` or `sessionStorage` as storage that never throws. */
export function pageStorage(area: 'localStorage' | 'sessionStorage'): SafeStorage;

/** `1,234,567`, grouped as `lang` (a BCP 47 tag) groups digits. */
export function formatNumber(n: number | null | undefined, lang: string): string;
/** Exact below 10,000, then compact (`12K`, `1.2万`): a count for a button. */
export function formatCompact(n: number | null | undefined, lang: string): string;

/**
 * What a page shows. loading: the campaign is being fetched; connecting: until the first
 * welcome; live; reconnecting: the node was reached once (or the campaign could not be
 * fetched yet) and the client tries again, taps are kept; ended: the campaign is over;
 * missing: no such campaign; private: an invite is needed (none, or another campaign's);
 * expired: the invite expired; closed: refused for another reason.
 */
export type ViewState =
  | 'loading' | 'connecting' | 'live' | 'reconnecting'
  | 'ended' | 'missing' | 'private' | 'expired' | 'closed';

/** Why a view stopped: its state, or `wrong_campaign` (state `private`: another campaign's invite). */
export type StopReason = 'ended' | 'missing' | 'private' | 'expired' | 'wrong_campaign' | 'closed';

/** `connect()`'s options for a viewer (no `role`). */
export type ViewOptions = Omit<ConnectOptions, 'role'>;

/** The campaign object of `GET /api/v1/campaigns/{id}`, as far as a page needs it. */
export interface Campaign {
  id: string;
  title: string;
  state: 'scheduled' | 'live' | 'ended' | string;
  access: 'public' | 'token';
  kinds: string[];
  stream_url?: string | null;
  registration_fields?: unknown[];
  stats?: Omit<Stats, 'type' | 'campaign'>;
  [key: string]: unknown;
}

export interface ViewEvents {
  /** The state changed, or the browser went on- or offline (`view.offline`). */
  state: (state: ViewState, view: LiveView) => void;
  /** The campaign was fetched (once, before connecting). */
  campaign: (campaign: Campaign) => void;
  welcome: (msg: Welcome) => void;
  /** A stats frame; after the end, the final totals. */
  stats: (stats: Partial<Stats>) => void;
  /** `total()` or `pending()` changed without a stats frame (a tap, an ack). */
  counts: () => void;
  /** The client's errors (see LivetallyError), and `bad_*` for malformed options. */
  error: (error: LivetallyError) => void;
  /** The viewer's branch changed (the client's `unit` frame; see `branch`). */
  unit: (frame: UnitFrame) => void;
}

/** A campaign as a page shows it; made by `liveView()`. */
export interface LiveView {
  readonly state: ViewState;
  /** Why it stopped; '' while it goes on. */
  readonly reason: StopReason | '';
  /** The campaign, once fetched. */
  readonly campaign: Campaign | null;
  /** The client, once the view connects (for `register()`, `reconnect()`, `session`...). */
  readonly client: Client | null;
  /** The latest stats (`viewers` is 0 once ended; `peak_viewers` stays). */
  readonly stats: Partial<Stats> & { viewers: number; interactions: Record<string, number> };
  /** The browser says it is offline. */
  readonly offline: boolean;
  /** The viewer's branch from the last `unit` frame, top first; null without one. */
  readonly branch: BranchUnit[] | null;
  /** True while taps are taken: connecting, live or reconnecting. */
  readonly tappable: boolean;
  on<E extends keyof ViewEvents>(event: E, fn: ViewEvents[E]): () => void;
  /** The total of `kind` to show: the highest the node reported, plus the viewer's taps not in it yet. */
  total(kind: string): number;
  /** This viewer's taps not acknowledged yet, of `kind` or of every kind. */
  pending(kind?: string): number;
  /** The client's `interact()`; rejects with `not_connected` or `campaign_ended` while no taps are taken. */
  interact(kind: string, count?: number): Promise<void>;
  /** The page learned the campaign ended (e.g. a sign-up refused with `campaign_ended`). */
  ended(): void;
  /** The page is done with it: closes the client (keeping unacknowledged taps) and stops all events. */
  close(): void;
}

/**
 * Fetches the campaign (retrying with backoff while the node is unreachable), explains why
 * a viewer cannot join before trying, connects, and keeps the state and totals a page shows.
 * Never throws: a malformed option ends in state `missing` or `closed` with an `error` event.
 */
export function liveView(options: ViewOptions): LiveView;

/** A session's unacknowledged interactions in storage (internal: exported for the SDK's tests). */
export class Ledger {
  constructor(store: SafeStorage, key: string, options: { now?: () => number; newSession: () => string });
  readonly session: string;
  readonly acked: number;
  count(kind?: string): number;
}
