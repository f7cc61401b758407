import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';

/** What one request came to: ok, or why not (an HTTP status, an error name). */
export type Outcome = { ok: true; serverTiming?: string } | { ok: false; reason: string };

/** The requests that finished inside a measuring window. */
export interface LoadResult {
  /** Latencies of the requests that succeeded, ms, sorted ascending. */
  latenciesMs: number[];
  errors: number;
  /** Failures by reason. */
  errorReasons: Record<string, number>;
  /** Server-Timing header values of the successful requests that had one. */
  serverTimings: string[];
  /** Length of the window, s. */
  seconds: number;
}

/** Called at the edges of the measuring window, e.g. to read CPU counters. */
export interface WindowHooks {
  begin(): Promise<void>;
  end(): Promise<void>;
}

class Tally {
  readonly latenciesMs: number[] = [];
  readonly errorReasons: Record<string, number> = {};
  readonly serverTimings: string[] = [];
  errors = 0;

  add(outcome: Outcome, ms: number): void {
    if (outcome.ok) {
      this.latenciesMs.push(ms);
      if (outcome.serverTiming) this.serverTimings.push(outcome.serverTiming);
    } else {
      this.errors++;
      this.errorReasons[outcome.reason] = (this.errorReasons[outcome.reason] ?? 0) + 1;
    }
  }

  result(seconds: number): LoadResult {
    const { latenciesMs, errors, errorReasons, serverTimings } = this;
    latenciesMs.sort((a, b) => a - b);
    return { latenciesMs, errors, errorReasons, serverTimings, seconds };
  }
}

async function timed(send: () => Promise<Outcome>): Promise<[Outcome, number]> {
  const start = performance.now();
  const outcome = await send().catch(
    (err: Error): Outcome => ({ ok: false, reason: err.name || 'Error' }),
  );
  return [outcome, performance.now() - start];
}

/**
 * Closed loop: `concurrency` loops, each sending its next request when the answer to the last one
 * arrives. The loops run through a warm-up and on through the window without a pause, so the
 * window sees steady state; it counts the requests that finish inside it, and those in flight at
 * either edge balance out.
 */
export async function closedLoop(options: {
  concurrency: number;
  warmupMs: number;
  durationMs: number;
  send: () => Promise<Outcome>;
  hooks: WindowHooks;
}): Promise<LoadResult> {
  const { concurrency, warmupMs, durationMs, send, hooks } = options;
  const tally = new Tally();
  let state: 'warm-up' | 'measuring' | 'stopped' = 'warm-up';
  const loop = async () => {
    while (state !== 'stopped') {
      const [outcome, ms] = await timed(send);
      if (state === 'measuring') tally.add(outcome, ms);
    }
  };
  const loops = Array.from({ length: concurrency }, loop);

  await sleep(warmupMs);
  await hooks.begin();
  const start = performance.now();
  state = 'measuring';
  await sleep(durationMs);
  state = 'stopped';
  const seconds = (performance.now() - start) / 1000;
  await hooks.end();
  await Promise.all(loops);
  return tally.result(seconds);
}

/**
 * A burst: `total` requests from `concurrency` loops as fast as they are answered; the window is
 * the whole burst, from the first request sent to the last answer.
 */
export async function burst(options: {
  total: number;
  concurrency: number;
  send: () => Promise<Outcome>;
  hooks: WindowHooks;
}): Promise<LoadResult> {
  const { total, concurrency, send, hooks } = options;
  const tally = new Tally();
  let issued = 0;
  const loop = async () => {
    while (issued < total) {
      issued++;
      const [outcome, ms] = await timed(send);
      tally.add(outcome, ms);
    }
  };
  await hooks.begin();
  const start = performance.now();
  await Promise.all(Array.from({ length: Math.min(concurrency, total) }, loop));
  const seconds = (performance.now() - start) / 1000;
  await hooks.end();
  return tally.result(seconds);
}
