import type { Contender, ContenderName } from './contenders/contender.js';
import type { BenchImage, ImageName, UniqueJpegs } from './images.js';
import { burst, closedLoop, type LoadResult, type WindowHooks } from './load-generator.js';
import { type StatsProbe, type StatsSnapshot, type Usage, usageBetween } from './process-stats.js';
import { mean, quantile } from './quantiles.js';
import { meanServerTiming } from './server-timing.js';

/** One measured phase: a contender, an image, a concurrency, in one round. */
export interface PhaseResult<Name extends string = ContenderName> extends Usage {
  round: number;
  image: ImageName;
  contender: Name;
  concurrency: number;
  /** Successful requests inside the window. */
  requests: number;
  /** Failed requests inside the window; CPU and Redis commands are per answered request, both. */
  errors: number;
  errorReasons: Record<string, number>;
  seconds: number;
  /** Successful requests per second. */
  throughput: number;
  /** Latencies of the successful requests; absent when none succeeded. */
  p50Ms?: number;
  p99Ms?: number;
  meanMs?: number;
  /** Mean of each `Server-Timing` entry over the successful requests that had the header, ms. */
  serverTimingMs?: Record<string, number>;
}

export interface PhaseSettings {
  seconds: number;
  asyncJobs: number;
  asyncConcurrency: number;
}

/**
 * Runs one phase and charges it its share of CPU, memory and Redis commands: counters are read at
 * the edges of the measuring window, and `deps.window` (e.g. a worker's /metrics) is called there
 * too. A burst contender also gets a small warm-up burst first, and is given time to drain before
 * and after its measured burst.
 */
export async function runPhase<Name extends string>(
  phase: { round: number; image: BenchImage; contender: Contender<Name>; concurrency: number },
  deps: { probe: StatsProbe; uniques: UniqueJpegs; settings: PhaseSettings; window?: WindowHooks },
): Promise<PhaseResult<Name>> {
  const { image, contender } = phase;
  const { probe, uniques, settings, window } = deps;
  const send = () => contender.send(uniques.next(image.jpeg));
  let before: StatsSnapshot | undefined;
  let after: StatsSnapshot | undefined;
  const hooks: WindowHooks = {
    begin: async () => {
      [before] = await Promise.all([probe.snapshot(contender.pids), window?.begin()]);
    },
    end: async () => {
      [after] = await Promise.all([probe.snapshot(contender.pids), window?.end()]);
    },
  };

  let load: LoadResult;
  if (contender.load === 'closed-loop') {
    load = await closedLoop({
      concurrency: phase.concurrency,
      warmupMs: Math.min(1000, settings.seconds * 250),
      durationMs: settings.seconds * 1000,
      send,
      hooks,
    });
  } else {
    const concurrency = phase.concurrency;
    const noHooks = { begin: async () => undefined, end: async () => undefined };
    await contender.settle();
    await burst({
      total: Math.min(settings.asyncJobs, 4 * concurrency),
      concurrency,
      send,
      hooks: noHooks,
    });
    await contender.settle();
    load = await burst({ total: settings.asyncJobs, concurrency, send, hooks });
    await contender.settle();
  }

  const requests = load.latenciesMs.length;
  return {
    round: phase.round,
    image: image.name,
    contender: contender.name,
    concurrency: phase.concurrency,
    requests,
    errors: load.errors,
    errorReasons: load.errorReasons,
    seconds: load.seconds,
    throughput: requests / load.seconds,
    ...(requests > 0
      ? {
          p50Ms: quantile(load.latenciesMs, 0.5),
          p99Ms: quantile(load.latenciesMs, 0.99),
          meanMs: mean(load.latenciesMs),
        }
      : {}),
    ...usageBetween(before!, after!, {
      requests: requests + load.errors,
      seconds: load.seconds,
      usesRedis: contender.usesRedis,
    }),
    ...(load.serverTimings.length > 0
      ? { serverTimingMs: meanServerTiming(load.serverTimings) }
      : {}),
  };
}
