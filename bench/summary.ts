import { CONTENDER_NAMES, type ContenderName } from './contenders/contender.js';
import { IMAGE_NAMES, type ImageName } from './images.js';
import type { PhaseResult } from './phase-runner.js';
import { ROLES, type Role } from './process-stats.js';
import { median } from './quantiles.js';

/** One (image, contender, concurrency) over the rounds: each figure the median of the rounds'. */
export interface MedianPhase<Name extends string = ContenderName> {
  image: ImageName;
  contender: Name;
  concurrency: number;
  rounds: number;
  requests: number;
  errors: number;
  throughput: number;
  p50Ms?: number;
  p99Ms?: number;
  meanMs?: number;
  cpuMsPerRequest: Partial<Record<Role, number>>;
  rssMb: Partial<Record<Role, number>>;
  redisCommandsPerRequest?: number;
  redisCommandsPerSecond: number;
  serverTimingMs?: Record<string, number>;
}

/** The entries whose value is not undefined. */
function defined<T extends Record<string, number | undefined>>(values: T): Partial<T> {
  return Object.fromEntries(
    Object.entries(values).filter(([, v]) => v !== undefined),
  ) as Partial<T>;
}

function key(p: { image: string; contender: string; concurrency: number }): string {
  return `${p.image}|${p.contender}|${p.concurrency}`;
}

/**
 * Medians over rounds, ordered by image, contender (the predict suite's order; others as they
 * come), concurrency.
 */
export function medianPhases<Name extends string = ContenderName>(
  phases: readonly PhaseResult<Name>[],
): MedianPhase<Name>[] {
  const groups = new Map<string, PhaseResult<Name>[]>();
  for (const phase of phases) {
    const group = groups.get(key(phase)) ?? [];
    group.push(phase);
    groups.set(key(phase), group);
  }
  const medians = [...groups.values()].map((group) => {
    const { image, contender, concurrency } = group[0]!;
    const m = (pick: (p: PhaseResult<Name>) => number | undefined) => median(group.map(pick));
    const byRole = (pick: (p: PhaseResult<Name>) => Partial<Record<Role, number>>) =>
      Object.fromEntries(
        ROLES.flatMap((role) => {
          const value = m((p) => pick(p)[role]);
          return value === undefined ? [] : [[role, value]];
        }),
      );
    const timingNames = [...new Set(group.flatMap((p) => Object.keys(p.serverTimingMs ?? {})))];
    const commands = m((p) => p.redisCommandsPerRequest);
    return {
      image,
      contender,
      concurrency,
      rounds: group.length,
      requests: m((p) => p.requests)!,
      errors: m((p) => p.errors)!,
      throughput: m((p) => p.throughput)!,
      ...defined({
        p50Ms: m((p) => p.p50Ms),
        p99Ms: m((p) => p.p99Ms),
        meanMs: m((p) => p.meanMs),
      }),
      cpuMsPerRequest: byRole((p) => p.cpuMsPerRequest),
      rssMb: byRole((p) => p.rssMb),
      ...(commands === undefined ? {} : { redisCommandsPerRequest: commands }),
      redisCommandsPerSecond: m((p) => p.redisCommandsPerSecond)!,
      ...(timingNames.length > 0
        ? {
            serverTimingMs: Object.fromEntries(
              timingNames.map((name) => [name, m((p) => p.serverTimingMs?.[name])!]),
            ),
          }
        : {}),
    };
  });
  const contenders: readonly string[] = CONTENDER_NAMES;
  const order = (p: MedianPhase<Name>) =>
    [IMAGE_NAMES.indexOf(p.image), contenders.indexOf(p.contender), p.concurrency] as const;
  return medians.sort((a, b) => {
    const [x, y] = [order(a), order(b)];
    return x[0] - y[0] || x[1] - y[1] || x[2] - y[2];
  });
}

/** A ratio between two contenders at the same image and concurrency, taken in every round. */
interface RatioSpec {
  name: string;
  of: ContenderName;
  to: ContenderName;
  metric: 'throughput' | 'p50Ms' | 'p99Ms';
}

const RATIOS: readonly RatioSpec[] = [
  { name: 'gateway/plain req/s', of: 'gateway', to: 'plain', metric: 'throughput' },
  { name: 'gateway/plain p50', of: 'gateway', to: 'plain', metric: 'p50Ms' },
  { name: 'gateway/plain p99', of: 'gateway', to: 'plain', metric: 'p99Ms' },
  { name: 'gateway/direct req/s', of: 'gateway', to: 'direct', metric: 'throughput' },
  { name: 'cached/gateway req/s', of: 'cached', to: 'gateway', metric: 'throughput' },
  { name: 'cached/gateway p50', of: 'cached', to: 'gateway', metric: 'p50Ms' },
  { name: 'plain/direct req/s', of: 'plain', to: 'direct', metric: 'throughput' },
];

/** The ratios' names, in report order. */
export const RATIO_NAMES: readonly string[] = RATIOS.map((r) => r.name);

export interface Ratio {
  image: ImageName;
  concurrency: number;
  name: string;
  median: number;
  perRound: number[];
}

/** Each ratio computed within each round (same minute, same machine state), then the median. */
export function ratiosByRound(phases: readonly PhaseResult[]): Ratio[] {
  const byKey = new Map(phases.map((p) => [`${p.round}|${key(p)}`, p]));
  const rounds = [...new Set(phases.map((p) => p.round))];
  const cells = [...new Set(phases.map((p) => `${p.image}|${p.concurrency}`))];
  const ratios: Ratio[] = [];
  for (const cell of cells) {
    const [image, concurrency] = cell.split('|') as [ImageName, string];
    for (const spec of RATIOS) {
      const perRound = rounds.flatMap((round) => {
        const of = byKey.get(`${round}|${image}|${spec.of}|${concurrency}`);
        const to = byKey.get(`${round}|${image}|${spec.to}|${concurrency}`);
        const [a, b] = [of?.[spec.metric], to?.[spec.metric]];
        return a !== undefined && b !== undefined && b > 0 ? [a / b] : [];
      });
      const m = median(perRound);
      if (m !== undefined) {
        ratios.push({
          image,
          concurrency: Number(concurrency),
          name: spec.name,
          median: m,
          perRound,
        });
      }
    }
  }
  return ratios;
}
