import type { ContenderName } from './contenders/contender.js';
import type { BenchImage } from './images.js';
import type { MedianPhase } from './summary.js';

/** Contender colours and names on the chart, in legend order. */
const SERIES: Record<ContenderName, { colour: string; label: string }> = {
  direct: { colour: '#6b7280', label: 'direct pipeline (in-process reference)' },
  plain: { colour: '#2563eb', label: 'plain server (Fastify, no queue)' },
  floor: { colour: '#16a34a', label: 'BullMQ floor (no-op worker)' },
  gateway: { colour: '#dc2626', label: 'gateway sync POST /predict' },
  cached: { colour: '#9333ea', label: 'gateway sync, answered by the result cache' },
  async: { colour: '#d97706', label: 'gateway async POST /jobs (acceptance)' },
};

const WIDTH = 1240;
const HEIGHT = 600;
const PLOT = { top: 96, bottom: 110, left: 78, right: 28, gap: 40 };
const FONT = 'font-family="DejaVu Sans, Arial, sans-serif"';

/**
 * Throughput (x) against p99 latency (y), both on log scales, one line per contender through its
 * concurrency levels, one panel per image side by side. Hand-written SVG: sharp renders it to PNG.
 */
export function throughputLatencyChart(options: {
  title: string;
  subtitle: string;
  images: readonly BenchImage[];
  medians: readonly MedianPhase[];
}): string {
  const { images, medians } = options;
  const panelWidth = (WIDTH - PLOT.gap * (images.length - 1)) / images.length;
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}">`,
    `<rect width="${WIDTH}" height="${HEIGHT}" fill="#ffffff"/>`,
    text(WIDTH / 2, 30, options.title, { size: 19, anchor: 'middle', weight: 'bold' }),
    text(WIDTH / 2, 54, options.subtitle, { size: 13, anchor: 'middle', colour: '#444' }),
  ];
  images.forEach((image, i) => {
    const x0 = i * (panelWidth + PLOT.gap);
    parts.push(
      panel(
        image,
        medians.filter((m) => m.image === image.name),
        x0,
        panelWidth,
      ),
    );
  });
  parts.push(legend(medians), '</svg>');
  return parts.join('\n');
}

function panel(image: BenchImage, phases: readonly MedianPhase[], x0: number, width: number) {
  const left = x0 + PLOT.left;
  const right = x0 + width - PLOT.right;
  const top = PLOT.top;
  const bottom = HEIGHT - PLOT.bottom;
  const parts = [
    text((left + right) / 2, top - 14, image.description, {
      size: 14,
      anchor: 'middle',
      weight: 'bold',
    }),
  ];
  const points = phases.flatMap((p) =>
    p.throughput > 0 && p.p99Ms !== undefined && p.p99Ms > 0 ? [{ ...p, p99Ms: p.p99Ms }] : [],
  );
  if (points.length === 0) {
    parts.push(text((left + right) / 2, (top + bottom) / 2, 'no data', { anchor: 'middle' }));
    return parts.join('\n');
  }

  const xs = logAxis(
    points.map((p) => p.throughput),
    left,
    right,
  );
  const ys = logAxis(
    points.map((p) => p.p99Ms),
    bottom,
    top,
  );
  const [x, y] = [xs.at, ys.at];

  // Grid and ticks.
  for (const { value, decade } of xs.ticks) {
    parts.push(line(x(value), top, x(value), bottom, decade ? '#d1d5db' : '#eef0f3'));
    parts.push(text(x(value), bottom + 18, formatTick(value), { size: 12, anchor: 'middle' }));
  }
  for (const { value, decade } of ys.ticks) {
    parts.push(line(left, y(value), right, y(value), decade ? '#d1d5db' : '#eef0f3'));
    parts.push(text(left - 8, y(value) + 4, formatTick(value), { size: 12, anchor: 'end' }));
  }
  parts.push(
    `<rect x="${left}" y="${top}" width="${right - left}" height="${bottom - top}" fill="none" stroke="#9ca3af"/>`,
    text((left + right) / 2, bottom + 42, 'throughput (req/s, log scale; async: accepted jobs/s)', {
      size: 13,
      anchor: 'middle',
    }),
    text(x0 + 18, (top + bottom) / 2, 'p99 latency (ms, log scale)', {
      size: 13,
      anchor: 'middle',
      rotate: true,
    }),
  );

  // One line per contender, through its concurrency levels.
  for (const [name, series] of Object.entries(SERIES) as [
    ContenderName,
    (typeof SERIES)[ContenderName],
  ][]) {
    const own = points
      .filter((p) => p.contender === name)
      .sort((a, b) => a.concurrency - b.concurrency);
    if (own.length === 0) continue;
    if (own.length > 1) {
      const path = own
        .map((p) => `${x(p.throughput).toFixed(1)},${y(p.p99Ms).toFixed(1)}`)
        .join(' ');
      parts.push(
        `<polyline points="${path}" fill="none" stroke="${series.colour}" stroke-width="2"/>`,
      );
    }
    for (const p of own) {
      const [px, py] = [x(p.throughput), y(p.p99Ms)];
      parts.push(marker(name, px, py, series.colour));
      parts.push(text(px + 7, py - 7, `c=${p.concurrency}`, { size: 11, colour: series.colour }));
    }
  }
  return parts.join('\n');
}

function legend(medians: readonly MedianPhase[]): string {
  const present = (Object.keys(SERIES) as ContenderName[]).filter((name) =>
    medians.some((m) => m.contender === name),
  );
  const columns = 3;
  const columnWidth = (WIDTH - 2 * PLOT.left) / columns;
  return present
    .map((name, i) => {
      const lx = PLOT.left + (i % columns) * columnWidth;
      const ly = HEIGHT - 42 + Math.floor(i / columns) * 22;
      const { colour, label } = SERIES[name];
      return [
        line(lx, ly - 4, lx + 26, ly - 4, colour, 2),
        marker(name, lx + 13, ly - 4, colour),
        text(lx + 34, ly, label, { size: 13 }),
      ].join('\n');
    })
    .join('\n');
}

function marker(name: ContenderName, x: number, y: number, colour: string): string {
  return name === 'async'
    ? `<rect x="${(x - 5).toFixed(1)}" y="${(y - 5).toFixed(1)}" width="10" height="10" fill="${colour}" transform="rotate(45 ${x.toFixed(1)} ${y.toFixed(1)})"/>`
    : `<circle cx="${x.toFixed(1)}" cy="${y.toFixed(1)}" r="4" fill="${colour}"/>`;
}

function line(x1: number, y1: number, x2: number, y2: number, colour: string, width = 1): string {
  return `<line x1="${x1.toFixed(1)}" y1="${y1.toFixed(1)}" x2="${x2.toFixed(1)}" y2="${y2.toFixed(1)}" stroke="${colour}" stroke-width="${width}"/>`;
}

function text(
  x: number,
  y: number,
  content: string,
  style: {
    size?: number;
    anchor?: string;
    weight?: string;
    colour?: string;
    rotate?: boolean;
  } = {},
): string {
  const transform = style.rotate ? ` transform="rotate(-90 ${x.toFixed(1)} ${y.toFixed(1)})"` : '';
  return `<text x="${x.toFixed(1)}" y="${y.toFixed(1)}" ${FONT} font-size="${style.size ?? 12}" text-anchor="${style.anchor ?? 'start'}" font-weight="${style.weight ?? 'normal'}" fill="${style.colour ?? '#111'}"${transform}>${escapeXml(content)}</text>`;
}

function escapeXml(s: string): string {
  return s.replace(
    /[&<>"]/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!,
  );
}

/** A log scale over the values, widened to 1-2-5 ticks, mapped onto [from, to] pixels. */
function logAxis(values: readonly number[], from: number, to: number) {
  const min = nice(Math.min(...values) * 0.8, 'down');
  const max = nice(Math.max(...values) * 1.25, 'up');
  const span = Math.log10(max) - Math.log10(min);
  return {
    at: (v: number) => from + ((Math.log10(v) - Math.log10(min)) / span) * (to - from),
    ticks: logTicks(min, max),
  };
}

/** The nearest 1, 2 or 5 times a power of ten at or above (`up`) or at or below (`down`) `v`. */
function nice(v: number, direction: 'up' | 'down'): number {
  const power = 10 ** Math.floor(Math.log10(v));
  const mantissas = [1, 2, 5, 10];
  const m =
    direction === 'up'
      ? mantissas.find((x) => x * power >= v * 0.9999)
      : mantissas.findLast((x) => x * power <= v * 1.0001);
  return (m ?? 1) * power;
}

/** 1, 2 and 5 times each power of ten from `min` to `max`. */
function logTicks(min: number, max: number): { value: number; decade: boolean }[] {
  const ticks: { value: number; decade: boolean }[] = [];
  for (let k = Math.floor(Math.log10(min) + 1e-9); k <= Math.ceil(Math.log10(max)); k++) {
    for (const m of [1, 2, 5]) {
      const value = m * 10 ** k;
      if (value >= min * 0.9999 && value <= max * 1.0001) ticks.push({ value, decade: m === 1 });
    }
  }
  return ticks;
}

function formatTick(v: number): string {
  return v >= 1 ? String(Math.round(v)) : String(Number(v.toPrecision(2)));
}
