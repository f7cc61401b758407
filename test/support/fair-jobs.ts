import type { JobSpec } from '../../shared/jobs/job-spec.js';
import type { BackendKind } from '../../shared/models/model-spec.js';
import { FairScheduler } from '../../shared/queues/fair-scheduler.js';
import type { InferenceQueues } from '../../shared/queues/inference-queues.js';

/** An async job as the API adds it: parked, admitted in the same MULTI, then dispatched. */
export async function addAsyncJob(
  queues: InferenceQueues,
  scheduler: FairScheduler,
  backend: BackendKind,
  job: { id: string; owner: string; priority: number; data: JobSpec },
  options: { dispatch?: boolean } = {},
): Promise<string[]> {
  const { afterReply } = await queues.addAtomically(
    backend,
    job.id,
    job.data,
    FairScheduler.parked(job.priority),
    () => undefined,
    (transaction) => scheduler.stageAdmit(transaction, backend, job),
  );
  const claimed = afterReply as string[];
  if (options.dispatch !== false) await scheduler.dispatch(backend, claimed);
  return claimed;
}
