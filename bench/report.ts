import { CONTENDER_LABELS as LABELS } from './contenders/contender.js';
import type { BenchImage } from './images.js';
import type { PhaseResult } from './phase-runner.js';
import type { Role } from './process-stats.js';
import { median, tidy } from './quantiles.js';
import { type MedianPhase, RATIO_NAMES, type Ratio } from './summary.js';
import { formatValue, type TargetResult } from './targets.js';

/** Right-aligned columns (the first left-aligned), two spaces apart. */
function aligned(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]?.length ?? 0)));
  const format = (row: string[]) =>
    row
      .map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!)))
      .join('  ');
  return [format(header), ...rows.map(format)].join('\n');
}

const show = (v: number | undefined) => (v === undefined ? '-' : String(tidy(v)));
const ROLE_COLUMNS: [Role, string][] = [
  ['server', 'srv'],
  ['worker', 'wrk'],
  ['redis', 'redis'],
  ['client', 'cli'],
];

/** The table of one image: one row per contender and concurrency, medians over the rounds. */
export function imageTable(image: BenchImage, medians: readonly MedianPhase[]): string {
  const rows = medians
    .filter((m) => m.image === image.name)
    .map((m) => [
      LABELS[m.contender],
      String(m.concurrency),
      show(m.throughput),
      show(m.p50Ms),
      show(m.p99Ms),
      show(m.errors),
      ...ROLE_COLUMNS.map(([role]) => show(m.cpuMsPerRequest[role])),
      show(m.redisCommandsPerRequest),
      ...ROLE_COLUMNS.map(([role]) => show(m.rssMb[role])),
    ]);
  const header = [
    'contender',
    'c',
    'req/s',
    'p50 ms',
    'p99 ms',
    'errors',
    ...ROLE_COLUMNS.map(([, short]) => `cpu:${short}`),
    'cmds/req',
    ...ROLE_COLUMNS.map(([, short]) => `rss:${short}`),
  ];
  return aligned(header, rows);
}

export const TABLE_LEGEND =
  'cpu:* CPU ms per request by process (srv: API or plain server, wrk: queue worker, cli: this ' +
  'process, the load generator); cmds/req: Redis commands per request; rss:* resident MB at the ' +
  'end of the phase. The async row: accepted jobs/s and acceptance latency of a burst.';

/** Per-round ratios of one image, medians. */
export function ratioTable(image: BenchImage, ratios: readonly Ratio[]): string {
  const own = ratios.filter((r) => r.image === image.name);
  if (own.length === 0) return '';
  const names = RATIO_NAMES.filter((name) => own.some((r) => r.name === name));
  const levels = [...new Set(own.map((r) => r.concurrency))].sort((a, b) => a - b);
  const rows = levels.map((c) => [
    `c=${c}`,
    ...names.map((name) => {
      const ratio = own.find((r) => r.concurrency === c && r.name === name);
      return ratio ? `${tidy(ratio.median)}x` : '-';
    }),
  ]);
  return aligned(['ratio (median of rounds)', ...names], rows);
}

/** Where a concurrency-1 gateway request's time goes, from its Server-Timing header. */
export function serverTimingBreakdown(image: BenchImage, medians: readonly MedianPhase[]): string {
  const gateway = medians.filter((m) => m.image === image.name && m.contender === 'gateway');
  const low = gateway.sort((a, b) => a.concurrency - b.concurrency)[0];
  if (!low) return '';
  if (low.meanMs === undefined) return `gateway sync c=${low.concurrency}: no successful request`;
  const head = `gateway sync c=${low.concurrency}, client mean ${tidy(low.meanMs)} ms`;
  if (!low.serverTimingMs) return `${head}: no Server-Timing header in the answers`;
  const entries = Object.entries(low.serverTimingMs).map(([name, ms]) => `${name} ${tidy(ms)}`);
  return `${head}; Server-Timing means (ms): ${entries.join(', ')}`;
}

export function targetLines(targets: readonly TargetResult[]): string {
  return targets
    .map((t) => {
      if (t.pass === undefined) return `  SKIP  ${t.image}: ${t.description} (not run)`;
      const measured =
        t.value === undefined
          ? 'no successful requests to measure'
          : `${formatValue(t.value, t.unit)}, limit ${formatValue(t.limit!, t.unit)} (ratio ${tidy(t.ratio!)})`;
      const errors = t.errors > 0 ? `; ${t.errors} failed requests in its phases` : '';
      return `  ${t.pass ? 'PASS' : 'FAIL'}  ${t.image}: ${t.description}: ${measured}${errors}`;
    })
    .join('\n');
}

/** Failures by reason over every round, when there were any. */
export function errorSummary(phases: readonly PhaseResult[]): string {
  const lines = phases
    .filter((p) => p.errors > 0)
    .map(
      (p) =>
        `  round ${p.round} ${p.image} ${LABELS[p.contender]} c=${p.concurrency}: ${Object.entries(
          p.errorReasons,
        )
          .map(([reason, n]) => `${n} x ${reason}`)
          .join(', ')}`,
    );
  return lines.length > 0 ? `errors:\n${lines.join('\n')}` : '';
}

/**
 * Redis's commands per second while contenders that do not use it ran: the idle services of the
 * others (heartbeats, blocking reads) and any other client of this Redis.
 */
export function redisBackground(phases: readonly PhaseResult[]): string {
  const quiet = phases.filter((p) => p.contender === 'direct' || p.contender === 'plain');
  const perSecond = median(quiet.map((p) => p.redisCommandsPerSecond));
  return perSecond === undefined
    ? ''
    : `Redis background during direct and plain phases (idle services, other clients): ${tidy(perSecond)} commands/s`;
}

/** One line per finished phase, while the run goes on. */
export function progressLine(p: PhaseResult, rounds: number): string {
  return [
    `[round ${p.round}/${rounds}]`,
    p.image.padEnd(9),
    LABELS[p.contender].padEnd(20),
    `c=${p.concurrency}`.padEnd(5),
    `${tidy(p.throughput)} req/s`.padStart(12),
    `p50 ${show(p.p50Ms)} ms`.padStart(13),
    `p99 ${show(p.p99Ms)} ms`.padStart(13),
    p.errors > 0 ? `errors ${p.errors}` : '',
  ].join('  ');
}
