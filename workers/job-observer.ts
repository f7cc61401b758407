import type { Job, Worker } from 'bullmq';
import { failureCode } from '../shared/errors/index.js';
import type { InferenceResult } from '../shared/jobs/inference-result.js';
import type { JobSpec } from '../shared/jobs/job-spec.js';
import type { WorkerMetrics } from '../shared/metrics/index.js';
import type { StatsStore } from '../shared/stats/stats-store.js';
import { wasForwarded } from './job-attempts.js';

export interface JobObserverDeps {
  metrics: WorkerMetrics;
  stats: StatsStore;
}

/**
 * Counts each job's outcome where it happens, in the worker that finished it (so nothing is counted
 * twice, however many API instances listen): Prometheus counters and the shared /stats (batched
 * by the stats store). Also the queue wait of first attempts and the preprocessing time of completed jobs.
 */
export function observeJobs(worker: Worker<JobSpec, InferenceResult>, deps: JobObserverDeps): void {
  const { metrics, stats } = deps;
  const backend = metrics.backend;

  worker.on('active', (job) => {
    if (job.attemptsMade === 0 && job.processedOn) {
      metrics.observeQueueWait(job.data.model, (job.processedOn - job.timestamp) / 1000);
    }
  });
  worker.on('completed', (job, result) => {
    metrics.jobCompleted(job.data.model);
    if (result?.timings)
      metrics.observePreprocess(job.data.model, result.timings.preprocess_ms / 1000);
    stats.recordJob({
      tenant: job.data.owner,
      backend,
      model: job.data.model,
      outcome: 'completed',
    });
  });
  worker.on('failed', (job, err) => {
    // A job moved to another backend is neither failed nor retried: it is counted where it ends.
    if (!job || wasForwarded(err)) return;
    const final = isFinal(job);
    metrics.jobFailed(job.data.model, failureCode(job.failedReason ?? err.message), final);
    stats.recordJob({
      tenant: job.data.owner,
      backend,
      model: job.data.model,
      outcome: final ? 'failed' : 'retried',
    });
  });
}

/**
 * Whether BullMQ failed the job for good, rather than scheduling another attempt: by the time the
 * `failed` event fires, a final failure has its `finishedOn`.
 */
function isFinal(job: Job): boolean {
  return job.finishedOn !== undefined;
}
