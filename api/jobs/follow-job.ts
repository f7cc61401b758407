import type { InferenceResult } from '../../shared/jobs/inference-result.js';
import type { JobRecords } from '../../shared/jobs/job-records.js';
import type { BackendKind } from '../../shared/models/model-spec.js';
import { INFERENCE_QUEUES } from '../../shared/queues/index.js';
import type { InferenceQueues } from '../../shared/queues/inference-queues.js';
import type { CompletionWaiter, Finished } from './completion-waiter.js';

export interface FollowJobDeps {
  waiter: CompletionWaiter;
  records: JobRecords;
  queues: InferenceQueues;
}

/** How long a request waits for its job to finish (0: not at all), and what calls the wait off. */
export interface JobWait {
  timeoutMs: number;
  signal?: AbortSignal;
}

/** Where a followed job finished. */
export interface FollowedJob {
  backend: BackendKind;
  /** The worker's result, when the job's `completed` event was heard (a completed job never moves). */
  result?: InferenceResult;
}

/**
 * Waits for a job to finish wherever it ends up. A job that fails on one backend and is moved to
 * another (fallback) finishes twice: first as a failure in the old queue, then in the new one. So
 * when the job is found finished other than by its `completed` event, the record says where the
 * job is now; if it moved, the wait goes on in that queue for the time that is left. Resolves
 * where it finished, or `undefined` when the time runs out or `signal` aborts.
 *
 * Call it before the job is added (the first waiter must exist before the job can finish), or
 * with `exists` for a job that may have finished already.
 */
export async function followJob(
  deps: FollowJobDeps,
  jobId: string,
  backend: BackendKind,
  timeoutMs: number,
  signal?: AbortSignal,
  options: { exists?: boolean } = {},
): Promise<FollowedJob | undefined> {
  const deadline = Date.now() + timeoutMs;
  let current = backend;
  let moved = options.exists === true;
  for (;;) {
    const left = deadline - Date.now();
    if (left <= 0 || signal?.aborted) return undefined;
    const queue = INFERENCE_QUEUES[current];
    let finished: Finished | undefined;
    if (moved) {
      // In the queue it moved to (or for a job that existed already), the job may have finished
      // before this waiter existed: registered first, checked second, so that cannot slip through.
      const done = new AbortController();
      const waiting = deps.waiter.wait(
        queue,
        jobId,
        left,
        signal ? AbortSignal.any([signal, done.signal]) : done.signal,
      );
      if (await finishedIn(deps, queue, jobId)) {
        done.abort();
        await waiting;
        finished = { via: 'state' };
      } else {
        finished = await waiting;
      }
    } else {
      // A new job (the common case, once per sync request): no check to call off, so the
      // caller's signal is passed as it is (AbortSignal.any costs a few allocations and GC work).
      finished = await deps.waiter.wait(queue, jobId, left, signal);
    }
    if (!finished) return undefined;
    if (finished.via === 'completed') {
      return { backend: current, result: finished.returnvalue as InferenceResult };
    }
    const record = await deps.records.get(jobId).catch(() => undefined);
    if (!record || record.backend === current) return { backend: current };
    current = record.backend;
    moved = true;
  }
}

async function finishedIn(
  deps: FollowJobDeps,
  queue: (typeof INFERENCE_QUEUES)[BackendKind],
  jobId: string,
): Promise<boolean> {
  const [finished] = await deps.queues.areFinished(queue, [jobId]).catch(() => [false]);
  return finished === true;
}
