import { randomUUID } from 'node:crypto';
import { errors } from '../../shared/errors/index.js';
import type { JobRecords } from '../../shared/jobs/job-records.js';
import { type JobResource, toJobResource } from '../../shared/jobs/job-resource.js';
import type { Logger } from '../../shared/logging/logger.js';
import { INFERENCE_QUEUES, type InferenceJobData } from '../../shared/queues/index.js';
import type { InferenceQueues } from '../../shared/queues/inference-queues.js';
import type { Route } from '../../shared/routing/router.js';
import type { CompletionWaiter } from '../jobs/completion-waiter.js';
import type { ImageUploads } from './image-uploads.js';

export interface SubmitRequest {
  route: Route;
  version?: string;
  image: Buffer;
  contentType: string;
  params: InferenceJobData['params'];
  requestId: string;
  mode: InferenceJobData['mode'];
}

export interface Submission {
  jobId: string;
  /** Resolves `true` when the job has finished within the wait, `false` otherwise. */
  finished: Promise<boolean>;
}

export interface InferenceServiceDeps {
  images: ImageUploads;
  records: JobRecords;
  queues: InferenceQueues;
  waiter: CompletionWaiter;
  logger: Logger;
}

/**
 * Turns an accepted upload into a job: the image into storage (content-addressed), a small job into
 * the chosen backend's queue, and, when the caller will wait, a waiter registered before the job is
 * added so its completion cannot be missed.
 */
export class InferenceService {
  constructor(private readonly deps: InferenceServiceDeps) {}

  async submit(
    request: SubmitRequest,
    wait: { timeoutMs: number; signal?: AbortSignal } = { timeoutMs: 0 },
  ): Promise<Submission> {
    const key = await this.deps.images.save(request.image, request.contentType);

    const jobId = randomUUID();
    const { backend } = request.route;
    const abandon = new AbortController();
    const finished =
      wait.timeoutMs > 0
        ? this.deps.waiter.wait(
            INFERENCE_QUEUES[backend],
            jobId,
            wait.timeoutMs,
            wait.signal ? AbortSignal.any([wait.signal, abandon.signal]) : abandon.signal,
          )
        : Promise.resolve(false);
    const data: InferenceJobData = {
      model: request.route.model.name,
      ...(request.version ? { version: request.version } : {}),
      imageKey: key,
      params: request.params,
      requestId: request.requestId,
      mode: request.mode,
    };
    try {
      // The record first: a job that exists in a queue can always be found.
      await this.deps.records.create({
        id: jobId,
        model: data.model,
        backend,
        createdAt: Date.now(),
        requestId: request.requestId,
      });
      await this.deps.queues.add(backend, jobId, data);
    } catch (err) {
      abandon.abort();
      await this.deps.records.delete(jobId).catch(() => undefined);
      throw new errors.QUEUE_UNAVAILABLE((err as Error).message);
    }
    this.deps.logger.debug({ jobId, backend, requestId: request.requestId }, 'job queued');
    return { jobId, finished };
  }

  async get(jobId: string): Promise<JobResource | undefined> {
    try {
      const record = await this.deps.records.get(jobId);
      const found = record && (await this.deps.queues.get(record.backend, jobId));
      return found && toJobResource(found);
    } catch (err) {
      throw new errors.QUEUE_UNAVAILABLE((err as Error).message);
    }
  }
}
