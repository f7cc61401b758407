import type { Job } from 'bullmq';
import type { CacheEntry, ResultCache } from '../shared/cache/result-cache.js';
import type { InferenceResult } from '../shared/jobs/inference-result.js';
import type { JobSpec } from '../shared/jobs/job-spec.js';
import type { Logger } from '../shared/logging/logger.js';
import { modelFingerprint } from '../shared/models/model-fingerprint.js';
import type { BackendKind } from '../shared/models/model-spec.js';
import type { ModelRegistry } from '../shared/models/registry.js';

export interface ResultCacheWriterDeps {
  cache: ResultCache;
  registry: ModelRegistry;
  /** The backend this worker runs: the one that produced its results. */
  backend: BackendKind;
  logger: Logger;
}

/**
 * The result-cache entry a succeeded job leaves, when its job asks for one: written by the settle
 * step (JobLifecycle.settle), in the same round trip.
 */
export type ResultCacheWriter = (
  job: Pick<Job<JobSpec>, 'id' | 'data'>,
  result: InferenceResult,
) => CacheEntry | undefined;

/**
 * The one place a result enters the cache: the worker that produced it, as it settles the job
 * succeeded, for sync and async jobs alike. The entry is filed under the version that actually
 * served the job (so a worker that already has a newer version than the API knew of files it under
 * that one), and only when this worker's registry definition of the model is the one the API keyed
 * the request by: a worker still on an older registry file does not file its answers as current.
 */
export function createResultCacheWriter(deps: ResultCacheWriterDeps): ResultCacheWriter {
  return (job, result) => {
    const { data } = job;
    const terms = data.resultCache;
    if (!terms) return undefined;
    const model = deps.registry.get(data.model);
    if (!model || modelFingerprint(model) !== terms.definition) {
      deps.logger.debug(
        { jobId: job.id, model: data.model },
        'result not cached: this worker has another registry definition of the model',
      );
      return undefined;
    }
    return deps.cache.entry(
      {
        scope: terms.scope,
        model: data.model,
        definition: terms.definition,
        backend: deps.backend,
        version: result.version,
        image: data.imageKey,
        params: data.params,
      },
      {
        version: result.version,
        backend: result.backend,
        result: result.result,
        jobId: job.id!,
        computedAt: result.finishedAt,
      },
      terms.ttlSeconds,
    );
  };
}
