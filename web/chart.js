// A small live line chart drawn as SVG: viewers over time, as steps (a value holds until
// the next frame changes it), extended to "now" so a quiet campaign still moves along.

const NS = 'http://www.w3.org/2000/svg';
/** Points kept before the oldest half is thinned out (keeping each pair's maximum). */
const MAX_POINTS = 4000;
const HEIGHT = 220;
const PAD = { left: 48, right: 16, top: 14, bottom: 28 };
/** Candidate spacings of the time axis, in ms. */
const TIME_STEPS = [1, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400]
  .map((s) => s * 1000);

function svg(tag, attrs = {}, text) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text != null) e.textContent = text;
  return e;
}

/** A "nice" whole step (1, 2, 5 × 10^k, and 25 × 10^k from 25 up) at or above `v`. */
function niceStep(v) {
  if (v <= 1) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of p >= 10 ? [1, 2, 2.5, 5, 10] : [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

export class LineChart {
  /**
   * @param {HTMLElement} container
   * @param {{label: () => string, empty: () => string, number: (n:number) => string,
   *          time: (ms:number, withSeconds:boolean) => string}} fmt
   */
  constructor(container, fmt) {
    this.container = container;
    this.fmt = fmt;
    this.points = [];
    this.minSpanMs = 60_000;
    if (typeof ResizeObserver === 'function') {
      let last = 0;
      new ResizeObserver(() => {
        const w = container.clientWidth;
        if (w !== last) { last = w; this.render(); }
      }).observe(container);
    }
  }

  /** Replaces the history (`[[t_ms, value], ...]`). */
  set(points) {
    this.points = points
      .filter((p) => Array.isArray(p) && Number.isFinite(p[0]) && Number.isFinite(p[1]))
      .map(([t, v]) => ({ t, v }))
      .sort((a, b) => a.t - b.t);
    this.render();
  }

  /** Appends a live point; a point older than the last one is ignored. */
  add(t, v) {
    const last = this.points[this.points.length - 1];
    if (last && t < last.t) return;
    if (last && t === last.t) last.v = v;
    else this.points.push({ t, v });
    if (this.points.length > MAX_POINTS) this.thin();
  }

  thin() {
    const half = Math.floor(this.points.length / 2);
    const old = [];
    for (let i = 0; i + 1 < half; i += 2) {
      const a = this.points[i];
      const b = this.points[i + 1];
      old.push({ t: a.t, v: Math.max(a.v, b.v) });
    }
    this.points = old.concat(this.points.slice(half - (half % 2)));
  }

  render(now = Date.now()) {
    const c = this.container;
    const width = Math.max(240, c.clientWidth || 600);
    const root = svg('svg', { viewBox: `0 0 ${width} ${HEIGHT}`, width, height: HEIGHT, role: 'img', class: 'chart-svg' });
    const pts = this.points;
    const last = pts[pts.length - 1];
    const peak = pts.reduce((m, p) => Math.max(m, p.v), 0);
    root.setAttribute('aria-label', this.fmt.label(last ? last.v : 0, peak));
    c.dataset.points = String(pts.length);
    c.dataset.last = last ? String(last.v) : '';
    const plotW = width - PAD.left - PAD.right;
    const plotH = HEIGHT - PAD.top - PAD.bottom;
    const tMax = Math.max(now, last ? last.t : now);
    const tMin = Math.min(pts.length ? pts[0].t : tMax, tMax - this.minSpanMs);
    const ticks = 4;
    const yStep = niceStep((peak * 1.1) / ticks);
    const yMax = yStep * ticks;
    const x = (t) => PAD.left + ((t - tMin) / (tMax - tMin)) * plotW;
    const y = (v) => PAD.top + plotH - (v / yMax) * plotH;

    // Horizontal grid and value labels.
    const grid = svg('g', { class: 'chart-grid' });
    for (let i = 0; i <= ticks; i++) {
      const v = yStep * i;
      const yy = Math.round(y(v)) + 0.5;
      grid.append(svg('line', { x1: PAD.left, x2: width - PAD.right, y1: yy, y2: yy }));
      grid.append(svg('text', { x: PAD.left - 8, y: yy + 4, 'text-anchor': 'end', class: 'chart-label' },
        this.fmt.number(v)));
    }
    // Time labels, at least ~90 px apart.
    const span = tMax - tMin;
    const step = TIME_STEPS.find((s) => (span / s) * 90 <= plotW) || TIME_STEPS[TIME_STEPS.length - 1];
    const offset = new Date().getTimezoneOffset() * 60_000;
    const withSeconds = step < 60_000;
    for (let t = Math.ceil((tMin - offset) / step) * step + offset; t <= tMax; t += step) {
      const xx = Math.round(x(t)) + 0.5;
      grid.append(svg('line', { x1: xx, x2: xx, y1: PAD.top + plotH, y2: PAD.top + plotH + 4 }));
      grid.append(svg('text', { x: xx, y: HEIGHT - 8, 'text-anchor': 'middle', class: 'chart-label' },
        this.fmt.time(t, withSeconds)));
    }
    root.append(grid);

    if (!pts.length) {
      root.append(svg('text', { x: PAD.left + plotW / 2, y: PAD.top + plotH / 2, 'text-anchor': 'middle',
        class: 'chart-empty' }, this.fmt.empty()));
    } else {
      let line = `M${x(pts[0].t).toFixed(1)},${y(pts[0].v).toFixed(1)}`;
      for (let i = 1; i < pts.length; i++) {
        line += `H${x(pts[i].t).toFixed(1)}V${y(pts[i].v).toFixed(1)}`;
      }
      line += `H${x(tMax).toFixed(1)}`;
      const base = y(0).toFixed(1);
      const area = `${line}V${base}H${x(pts[0].t).toFixed(1)}Z`;
      root.append(svg('path', { d: area, class: 'chart-area' }));
      root.append(svg('path', { d: line, class: 'chart-line' }));
      root.append(svg('circle', { cx: x(tMax).toFixed(1), cy: y(last.v).toFixed(1), r: 4, class: 'chart-dot' }));
    }
    c.replaceChildren(root);
  }
}
