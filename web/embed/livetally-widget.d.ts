// Types of @livetally/widget: the <livetally-widget> element (docs/embedding.md).

export type WidgetState =
  | 'loading' | 'connecting' | 'live' | 'reconnecting'
  | 'ended' | 'missing' | 'private' | 'expired' | 'closed';

/** What the widget's SDK client offers a page (the full type is @livetally/sdk's `Client`). */
export interface WidgetClient {
  readonly viewer: string;
  readonly session: string;
  on(event: string, fn: (...args: any[]) => void): () => void;
  interact(kind: string, count?: number): Promise<void>;
  register(fields?: Record<string, string>): Promise<{ created: boolean; status: 200 | 201 }>;
  pending(kind?: string): number;
}

export class LivetallyWidget extends HTMLElement {
  readonly state: WidgetState;
  /** The number shown: viewers now (the peak once the campaign ended). */
  readonly viewers: number;
  /** This viewer's taps the node has not acknowledged yet. */
  readonly pending: number;
  /** The viewer id the node admitted; '' before that. */
  readonly viewer: string;
  /** The SDK client behind the widget, or null before it connects. */
  readonly client: WidgetClient | null;
  /** The viewer's branch (with a `unit` attribute, from the node's `unit` frame), top
   * first; null before the node told it. */
  readonly branch: { code: string; name: string; viewers: number }[] | null;
}

declare global {
  interface HTMLElementTagNameMap {
    'livetally-widget': LivetallyWidget;
  }
  interface HTMLElementEventMap {
    'livetally-state': CustomEvent<{ state: WidgetState }>;
  }
}
