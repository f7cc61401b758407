import type { BatchMode, ScenarioName, ScenarioSpec } from './batching-scenarios.js';
import type { PhaseResult } from './phase-runner.js';
import { median, tidy } from './quantiles.js';
import { type MedianPhase, medianPhases } from './summary.js';
import { formatValue, overRounds, type TargetDirection } from './targets.js';

/** One phase of a batching scenario, with the worker's backend calls inside its window. */
export interface BatchingPhase extends PhaseResult<BatchMode> {
  scenario: ScenarioName;
  /** Backend calls the worker made inside the window (`ai_gateway_batch_size_count`). */
  backendCalls: number;
  /** Inputs those calls carried (`ai_gateway_batch_size_sum`): the jobs run. */
  jobs: number;
  /** jobs / backendCalls; absent when no call was made. */
  meanBatchSize?: number;
}

/** A scenario's phase, medians over the rounds. */
export interface BatchingMedian extends MedianPhase<BatchMode> {
  scenario: ScenarioName;
  backendCalls: number;
  jobs: number;
  meanBatchSize?: number;
}

export function batchingMedians(phases: readonly BatchingPhase[]): BatchingMedian[] {
  const scenarios = [...new Set(phases.map((p) => p.scenario))];
  return scenarios.flatMap((scenario) => {
    const own = phases.filter((p) => p.scenario === scenario);
    return medianPhases(own).map((m) => {
      const group = own.filter(
        (p) => p.contender === m.contender && p.concurrency === m.concurrency,
      );
      const meanBatchSize = median(group.map((p) => p.meanBatchSize));
      return {
        scenario,
        ...m,
        backendCalls: median(group.map((p) => p.backendCalls))!,
        jobs: median(group.map((p) => p.jobs))!,
        ...(meanBatchSize === undefined ? {} : { meanBatchSize }),
      };
    });
  });
}

export interface BatchingTarget {
  scenario: ScenarioName;
  id: string;
  description: string;
  unit: string;
  /** Met: the median over rounds of value / limit on the right side of 1, no failed request. */
  pass?: boolean;
  value?: number;
  limit?: number;
  ratio?: number;
  errors: number;
  perRound: { round: number; value: number; limit: number }[];
}

interface TargetSpec {
  scenario: ScenarioName;
  id: string;
  description: string;
  unit: string;
  direction: TargetDirection;
  /** The phases it reads, by mode and concurrency. */
  needs: [BatchMode, number][];
  /** Value and limit within one round, from the phases in `needs` order. */
  measure(used: BatchingPhase[], all: readonly BatchingPhase[]): { value: number; limit: number };
}

/**
 * The lowest p50 difference that counts as a change at c=1: the larger of 0.5 ms, 5% of batching
 * off's p50, and how far batching off's own p50 moved between rounds (the machine's noise).
 */
function p50Noise(off: readonly BatchingPhase[]): number {
  const p50s = off.flatMap((p) => (p.p50Ms === undefined ? [] : [p.p50Ms]));
  if (p50s.length === 0) return 0.5;
  const spread = Math.max(...p50s) - Math.min(...p50s);
  return Math.max(0.5, 0.05 * median(p50s)!, spread);
}

/** The targets for the scenarios that ran; c=64 stands for a scenario's highest level. */
function targetSpecs(specs: readonly ScenarioSpec[]): TargetSpec[] {
  return specs.flatMap((spec): TargetSpec[] => {
    const low = Math.min(...spec.concurrency);
    const high = Math.max(...spec.concurrency);
    const latency: TargetSpec = {
      scenario: spec.name,
      id: `p50-c${low}`,
      description: `p50 at c=${low}: batching on - off within noise (a lone job never waits)`,
      unit: 'ms',
      direction: 'at-most',
      needs: [
        ['on', low],
        ['off', low],
      ],
      measure: ([on, off], all) => ({
        value: (on!.p50Ms ?? Number.POSITIVE_INFINITY) - (off!.p50Ms ?? 0),
        limit: p50Noise(
          all.filter(
            (p) => p.scenario === spec.name && p.contender === 'off' && p.concurrency === low,
          ),
        ),
      }),
    };
    const throughput = (c: number, limit: number): TargetSpec => ({
      scenario: spec.name,
      id: `throughput-c${c}`,
      description: `req/s at c=${c}: batching on >= ${limit}x off`,
      unit: 'x',
      direction: 'at-least',
      needs: [
        ['on', c],
        ['off', c],
      ],
      measure: ([on, off]) => ({ value: on!.throughput / Math.max(off!.throughput, 1e-9), limit }),
    });
    if (spec.name === 'onnx') {
      return [...spec.concurrency.map((c) => throughput(c, 0.95)), latency];
    }
    return [
      {
        scenario: spec.name,
        id: `calls-c${high}`,
        description: `jobs per backend call at c=${high}, batching on: >= 4 (4x fewer calls than jobs)`,
        unit: 'jobs/call',
        direction: 'at-least',
        needs: [['on', high]],
        measure: ([on]) => ({ value: on!.jobs / Math.max(on!.backendCalls, 1), limit: 4 }),
      },
      throughput(high, 1.5),
      latency,
    ];
  });
}

/** Value and limit within each round, then the medians; pass from the median of value / limit. */
export function evaluateBatchingTargets(
  phases: readonly BatchingPhase[],
  specs: readonly ScenarioSpec[],
): BatchingTarget[] {
  const rounds = [...new Set(phases.map((p) => p.round))];
  return targetSpecs(specs).map((spec) => {
    let errors = 0;
    const perRound = rounds.flatMap((round) => {
      const used = spec.needs.map(([mode, c]) =>
        phases.find(
          (p) =>
            p.round === round &&
            p.scenario === spec.scenario &&
            p.contender === mode &&
            p.concurrency === c,
        ),
      );
      if (used.some((p) => p === undefined)) return [];
      errors += used.reduce((sum, p) => sum + p!.errors, 0);
      return [{ round, ...spec.measure(used as BatchingPhase[], phases) }];
    });
    const summary = overRounds(perRound, spec.direction);
    return {
      scenario: spec.scenario,
      id: spec.id,
      description: spec.description,
      unit: spec.unit,
      ...(summary
        ? {
            pass: summary.met && errors === 0,
            value: summary.value,
            limit: summary.limit,
            ratio: summary.ratio,
          }
        : {}),
      errors,
      perRound,
    };
  });
}

/** Right-aligned columns (the first two left-aligned), two spaces apart. */
function aligned(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]?.length ?? 0)));
  const format = (row: string[]) =>
    row.map((cell, i) => (i < 2 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  ');
  return [format(header), ...rows.map(format)].join('\n');
}

const show = (v: number | undefined) => (v === undefined ? '-' : String(tidy(v)));

/** One row per scenario, mode and concurrency, with on/off ratios on the batching-on rows. */
export function batchingTable(
  specs: readonly ScenarioSpec[],
  medians: readonly BatchingMedian[],
  phases: readonly BatchingPhase[],
): string {
  const rows: string[][] = [];
  for (const spec of specs) {
    for (const c of spec.concurrency) {
      for (const mode of ['on', 'off'] as const) {
        const m = medians.find(
          (x) => x.scenario === spec.name && x.contender === mode && x.concurrency === c,
        );
        if (!m) continue;
        const ratio = (metric: 'throughput' | 'p50Ms') =>
          mode === 'on' ? show(roundRatio(phases, spec.name, c, metric)) : '';
        rows.push([
          spec.name,
          mode,
          String(c),
          show(m.throughput),
          show(m.p50Ms),
          show(m.p99Ms),
          show(m.errors),
          show(m.backendCalls),
          show(m.jobs),
          show(m.meanBatchSize),
          show(m.serverTimingMs?.batch),
          show(m.cpuMsPerRequest.server),
          show(m.cpuMsPerRequest.worker),
          show(m.cpuMsPerRequest.redis),
          ratio('throughput'),
          ratio('p50Ms'),
        ]);
      }
    }
  }
  return aligned(
    [
      'scenario',
      'batching',
      'c',
      'req/s',
      'p50 ms',
      'p99 ms',
      'errors',
      'calls',
      'jobs',
      'jobs/call',
      'wait ms',
      'cpu:srv',
      'cpu:wrk',
      'cpu:redis',
      'on/off req/s',
      'on/off p50',
    ],
    rows,
  );
}

/** The median over rounds of on / off for one scenario and concurrency. */
function roundRatio(
  phases: readonly BatchingPhase[],
  scenario: ScenarioName,
  c: number,
  metric: 'throughput' | 'p50Ms',
): number | undefined {
  const rounds = [...new Set(phases.map((p) => p.round))];
  return median(
    rounds.map((round) => {
      const pick = (mode: BatchMode) =>
        phases.find(
          (p) =>
            p.round === round &&
            p.scenario === scenario &&
            p.contender === mode &&
            p.concurrency === c,
        )?.[metric];
      const [on, off] = [pick('on'), pick('off')];
      return on !== undefined && off !== undefined && off > 0 ? on / off : undefined;
    }),
  );
}

export const BATCHING_LEGEND =
  'calls, jobs: backend calls and the inputs they carried inside the window (worker /metrics, ' +
  'ai_gateway_batch_size _count and _sum); wait ms: mean Server-Timing `batch` stage (time a ready ' +
  'job waited for its batch); cpu:* CPU ms per request (srv: API, wrk: worker, redis); on/off: ' +
  "within each round, then the median. The stand-ins' own CPU is not in these columns.";

export function batchingTargetLines(targets: readonly BatchingTarget[]): string {
  return targets
    .map((t) => {
      if (t.pass === undefined) return `  SKIP  ${t.scenario}: ${t.description} (not run)`;
      const rounds = t.perRound.map((r) => formatValue(r.value, t.unit)).join(', ');
      const errors = t.errors > 0 ? `; ${t.errors} failed requests in its phases` : '';
      return (
        `  ${t.pass ? 'PASS' : 'FAIL'}  ${t.scenario}: ${t.description}: ` +
        `${formatValue(t.value!, t.unit)}, limit ${formatValue(t.limit!, t.unit)} ` +
        `(rounds: ${rounds})${errors}`
      );
    })
    .join('\n');
}

/** One line per finished phase, while the run goes on. */
export function batchingProgressLine(p: BatchingPhase, rounds: number): string {
  return [
    `[round ${p.round}/${rounds}]`,
    p.scenario.padEnd(10),
    `batching ${p.contender}`.padEnd(12),
    `c=${p.concurrency}`.padEnd(5),
    `${tidy(p.throughput)} req/s`.padStart(12),
    `p50 ${show(p.p50Ms)} ms`.padStart(13),
    `p99 ${show(p.p99Ms)} ms`.padStart(13),
    `${show(p.meanBatchSize)} jobs/call`.padStart(15),
    p.errors > 0 ? `errors ${p.errors}` : '',
  ].join('  ');
}
