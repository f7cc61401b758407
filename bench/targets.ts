import type { ContenderName } from './contenders/contender.js';
import type { ImageName } from './images.js';
import type { PhaseResult } from './phase-runner.js';
import { median, tidy } from './quantiles.js';

/** `at-least`: value >= limit passes; `at-most`: value <= limit. */
export type TargetDirection = 'at-least' | 'at-most';

interface TargetSpec {
  id: string;
  direction: TargetDirection;
  unit: string;
  description: string;
  /** The phases it compares: contender and concurrency (the async contender at any). */
  needs: [ContenderName, number][];
  /** Value and limit from those phases, in `needs` order; undefined when a figure is missing. */
  measure(phases: PhaseResult[]): { value: number; limit: number } | undefined;
}

export interface TargetResult {
  image: ImageName;
  id: string;
  description: string;
  unit: string;
  /**
   * Met: the median over rounds of value / limit is on the right side of 1, measured in every
   * round, without a failed request in the phases used. Undefined: skipped (a contender or
   * concurrency it needs was not run).
   */
  pass?: boolean;
  /** Medians over the rounds that gave a value. */
  value?: number;
  limit?: number;
  ratio?: number;
  /** Failed requests in the phases used, all rounds. */
  errors: number;
  perRound: { round: number; value?: number; limit?: number; errors: number }[];
}

/** The targets of the benchmark issue; `c=64` and `c=1` stand for the highest and lowest run. */
function targetSpecs(levels: { low: number; high: number }): TargetSpec[] {
  const { low, high } = levels;
  const commands = (c: number): TargetSpec => ({
    id: `redis-commands-c${c}`,
    direction: 'at-most',
    unit: 'cmds/req',
    description: `Redis commands per gateway sync request at c=${c} <= BullMQ floor's per job + 10`,
    needs: [
      ['gateway', c],
      ['floor', c],
    ],
    measure: ([gateway, floor]) => {
      const [g, f] = [gateway?.redisCommandsPerRequest, floor?.redisCommandsPerRequest];
      return g === undefined || f === undefined ? undefined : { value: g, limit: f + 10 };
    },
  });
  return [
    {
      id: `throughput-c${high}`,
      direction: 'at-least',
      unit: 'x',
      description: `gateway sync req/s at c=${high} >= 0.8x the plain server's`,
      needs: [
        ['gateway', high],
        ['plain', high],
      ],
      measure: ([gateway, plain]) =>
        plain!.throughput > 0
          ? { value: gateway!.throughput / plain!.throughput, limit: 0.8 }
          : undefined,
    },
    {
      id: `p50-overhead-c${low}`,
      direction: 'at-most',
      unit: 'ms',
      description: `p50 at c=${low}: gateway sync - plain server <= BullMQ floor's p50 + 1.5 ms`,
      needs: [
        ['gateway', low],
        ['plain', low],
        ['floor', low],
      ],
      measure: ([gateway, plain, floor]) => {
        const [g, p, f] = [gateway?.p50Ms, plain?.p50Ms, floor?.p50Ms];
        return g === undefined || p === undefined || f === undefined
          ? undefined
          : { value: g - p, limit: f + 1.5 };
      },
    },
    {
      id: 'async-acceptance',
      direction: 'at-least',
      unit: 'jobs/s',
      description: 'async POST /jobs accepted >= 1000 jobs/s',
      needs: [['async', 0]],
      measure: ([accepted]) => ({ value: accepted!.throughput, limit: 1000 }),
    },
    commands(high),
    ...(low === high ? [] : [commands(low)]),
  ];
}

/**
 * Evaluates every target per image: value and limit within each round, then the medians, and
 * pass or fail from the median of the per-round ratio value / limit.
 */
export function evaluateTargets(
  phases: readonly PhaseResult[],
  images: readonly ImageName[],
  concurrency: readonly number[],
): TargetResult[] {
  const specs = targetSpecs({ low: Math.min(...concurrency), high: Math.max(...concurrency) });
  const rounds = [...new Set(phases.map((p) => p.round))];
  const results: TargetResult[] = [];
  for (const image of images) {
    for (const spec of specs) {
      const perRound = rounds.flatMap((round) => {
        const used = spec.needs.map(([contender, c]) =>
          phases.find(
            (p) =>
              p.round === round &&
              p.image === image &&
              p.contender === contender &&
              (contender === 'async' || p.concurrency === c),
          ),
        );
        if (used.some((p) => p === undefined)) return [];
        const errors = used.reduce((sum, p) => sum + p!.errors, 0);
        return [{ round, errors, ...spec.measure(used as PhaseResult[]) }];
      });
      const measured = perRound.flatMap(({ value, limit }) =>
        value === undefined || limit === undefined ? [] : [{ value, limit }],
      );
      const summary = overRounds(measured, spec.direction);
      const errors = perRound.reduce((sum, r) => sum + r.errors, 0);
      results.push({
        image,
        id: spec.id,
        description: spec.description,
        unit: spec.unit,
        ...(perRound.length === 0
          ? {}
          : {
              pass: (summary?.met ?? false) && measured.length === perRound.length && errors === 0,
            }),
        ...(summary ? { value: summary.value, limit: summary.limit, ratio: summary.ratio } : {}),
        errors,
        perRound,
      });
    }
  }
  return results;
}

/**
 * A target over the rounds: the medians of value, limit and value / limit, and whether that ratio
 * is on the target's side of 1. Undefined when no round measured it.
 */
export function overRounds(
  rounds: readonly { value: number; limit: number }[],
  direction: TargetDirection,
): { value: number; limit: number; ratio: number; met: boolean } | undefined {
  const ratio = median(rounds.map((r) => r.value / r.limit));
  if (ratio === undefined) return undefined;
  return {
    value: median(rounds.map((r) => r.value))!,
    limit: median(rounds.map((r) => r.limit))!,
    ratio,
    met: direction === 'at-least' ? ratio >= 1 : ratio <= 1,
  };
}

/** `0.8x`, `12.3 ms`, `1040 jobs/s`. */
export function formatValue(value: number, unit: string): string {
  return unit === 'x' ? `${tidy(value)}x` : `${tidy(value)} ${unit}`;
}
