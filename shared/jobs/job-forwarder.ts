import type { Job } from 'bullmq';
import { backendServing } from '../backends/backend-health.js';
import type { BackendStatusStore } from '../backends/backend-status.js';
import type { ErrorCode, JobError } from '../errors/index.js';
import type { BackendKind } from '../models/model-spec.js';
import type { ModelRegistry } from '../models/registry.js';
import type { InferenceQueues } from '../queues/inference-queues.js';
import type { InferenceResult } from './inference-result.js';
import type { JobRecords } from './job-records.js';
import type { JobSpec } from './job-spec.js';

/** Failures another backend may not share: its servers are elsewhere, its model files its own. */
export const FALLBACK_CODES: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'BACKEND_UNAVAILABLE',
  'BACKEND_TIMEOUT',
  'MODEL_UNAVAILABLE',
]);

export interface JobForwarderDeps {
  registry: ModelRegistry;
  records: JobRecords;
  queues: InferenceQueues;
  /** Read fresh at each move: the live picture of the other backends. */
  status: BackendStatusStore;
}

/**
 * Moves a failed job to the next backend that serves its model (fallback). The job keeps its id:
 * it is added under the same id to the other backend's queue, then its record is moved, so a reader
 * that finds the record pointing there finds the job there. Both steps are safe to repeat after a
 * crash: BullMQ ignores a second add of an existing id, and the record moves only from where it is.
 */
export class JobForwarder {
  constructor(private readonly deps: JobForwarderDeps) {}

  /**
   * The backend the job now waits in, or undefined when no other backend can serve it (not yet
   * tried, a live worker that reaches its servers, the model and the requested version ready).
   */
  async forward(
    job: Job<JobSpec, InferenceResult>,
    from: BackendKind,
    error: JobError,
  ): Promise<BackendKind | undefined> {
    const { registry, records, queues, status } = this.deps;
    const id = job.id!;
    const model = registry.get(job.data.model);
    const record = await records.get(id);
    if (!model || !record) return undefined;
    const options = job.opts.priority ? { priority: job.opts.priority } : {};
    if (record.backend !== from) {
      // An earlier run of this move got as far as the record: make sure the job is there too.
      await queues.add(record.backend, id, job.data, options);
      return record.backend;
    }
    const tried = new Set(record.route.map((step) => step.backend));
    for (const backend of Object.keys(model.backends) as BackendKind[]) {
      if (tried.has(backend)) continue;
      const snapshot = await status.read(backend);
      const served = snapshot.models[model.name];
      if (!backendServing(snapshot).serving || served?.state !== 'ready') continue;
      if (job.data.version && !served.versions.includes(job.data.version)) continue;
      await queues.add(backend, id, job.data, options);
      await records.forward(id, { from, to: backend, error });
      return backend;
    }
    return undefined;
  }
}
