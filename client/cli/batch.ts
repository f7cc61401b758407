import { setTimeout as sleep } from 'node:timers/promises';
import { ApiError, ConnectionError, isTransient } from '../index.js';
import { EXIT, type ExitCode, exitCodeOf, worse } from './exit-codes.js';
import type { Terminal } from './terminal.js';

/** Tries per item while the API asks to wait (429, 503 with Retry-After). */
const MAX_ATTEMPTS = 10;
/** The longest pause taken for one Retry-After, in seconds. */
const MAX_PAUSE_SECONDS = 120;

export interface BatchOptions<T, R> {
  /** What the summary counts, e.g. "images", "jobs". */
  noun: string;
  concurrency: number;
  signal: AbortSignal;
  run(item: T, signal: AbortSignal): Promise<R>;
  /** Writes one answer; false when it counts as failed all the same (a job that failed). */
  report(item: T, result: R): boolean;
  /** Writes one error. */
  failed(item: T, error: unknown): void;
  /**
   * A failure that would repeat for every item left, so the rest are skipped.
   * @defaultValue {@link failsEveryRequest}
   */
  stopsBatch?(error: unknown): boolean;
}

/**
 * Runs `run` over every item, `concurrency` at a time, with a progress bar on a terminal and, for
 * more than one item, a summary on stderr: done, failed, skipped, time and throughput. An item the
 * API turns away for now (rate limit, full queue) is tried again after its Retry-After. Returns
 * the exit code: ok when every item was done, else the worst failure's (unreachable over failed),
 * or interrupted after Ctrl-C.
 */
export async function runBatch<T, R>(
  terminal: Terminal,
  items: readonly T[],
  options: BatchOptions<T, R>,
): Promise<ExitCode> {
  const stopsBatch = options.stopsBatch ?? failsEveryRequest;
  const bar = terminal.progress(items.length);
  const startedAt = performance.now();
  let next = 0;
  let done = 0;
  let failed = 0;
  let stopped = false;
  let exitCode: ExitCode = EXIT.ok;
  let quietUntil = 0;
  const pause = async (error: ApiError) => {
    const seconds = Math.min(error.retryAfter ?? 1, MAX_PAUSE_SECONDS);
    // One note per pause, not one per lane.
    if (Date.now() >= quietUntil) terminal.note(`${error.code}: waiting ${seconds} s`);
    quietUntil = Date.now() + seconds * 1000;
    // Jitter, so the lanes do not come back all in the same instant.
    await sleep(seconds * 1000 * (1 + Math.random() * 0.2), undefined, { signal: options.signal });
  };
  const attempt = async (item: T): Promise<R> => {
    for (let tries = 1; ; tries++) {
      try {
        return await options.run(item, options.signal);
      } catch (error) {
        if (!isTransient(error) || tries === MAX_ATTEMPTS) throw error;
        await pause(error);
      }
    }
  };

  const lane = async () => {
    while (!stopped && !options.signal.aborted && next < items.length) {
      const item = items[next++]!;
      try {
        const result = await attempt(item);
        if (options.report(item, result)) {
          done++;
          bar?.tick('done');
        } else {
          failed++;
          exitCode = worse(exitCode, EXIT.failed);
          bar?.tick('failed');
        }
      } catch (error) {
        if (options.signal.aborted) break;
        failed++;
        options.failed(item, error);
        exitCode = worse(exitCode, exitCodeOf(error));
        stopped ||= stopsBatch(error);
        bar?.tick('failed');
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(options.concurrency, items.length) }, lane));

  bar?.finish();
  if (items.length > 1) {
    const seconds = (performance.now() - startedAt) / 1000;
    const skipped = items.length - done - failed;
    terminal.note(
      `${items.length} ${options.noun}: ${done} done, ${failed} failed` +
        `${skipped ? `, ${skipped} skipped` : ''} in ${seconds.toFixed(1)} s` +
        ` (${(done / Math.max(seconds, 0.001)).toFixed(1)}/s)`,
    );
  }
  return options.signal.aborted ? EXIT.interrupted : exitCode;
}

/** No connection, or a key the API refuses: every other request would fail the same way. */
export function failsEveryRequest(error: unknown): boolean {
  return (
    error instanceof ConnectionError ||
    (error instanceof ApiError && (error.status === 401 || error.status === 403))
  );
}
