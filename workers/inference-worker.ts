import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { type Job, Worker } from 'bullmq';
import { BackendStatusStore } from '../shared/backends/backend-status.js';
import type { Config } from '../shared/config/config.js';
import type { InferenceResult } from '../shared/jobs/inference-result.js';
import { JobLifecycle } from '../shared/jobs/job-lifecycle.js';
import { JobRecords } from '../shared/jobs/job-records.js';
import type { Logger } from '../shared/logging/logger.js';
import type { BackendKind } from '../shared/models/model-spec.js';
import type { ModelRegistry } from '../shared/models/registry.js';
import { INFERENCE_QUEUES, type InferenceJobData } from '../shared/queues/index.js';
import { createRedis, type Redis } from '../shared/redis/redis.js';
import { createObjectStore, type ObjectStore } from '../shared/storage/index.js';
import { WebhookQueue } from '../shared/webhooks/webhook-queue.js';
import type { InferenceBackend } from './backends/inference-backend.js';
import { createInferenceProcessor } from './inference-processor.js';
import { checkNotCanceled, guardLifecycle } from './job-lifecycle-guard.js';
import { StatusReporter } from './status-reporter.js';

export interface InferenceWorkerOptions {
  config: Config;
  registry: ModelRegistry;
  backend: InferenceBackend;
  logger: Logger;
}

/**
 * A worker pool member for one backend: loads the backend's models, reports their status, and
 * processes that backend's queue. `close()` lets active jobs finish within the shutdown timeout and
 * hands the rest back to the queue.
 */
export class InferenceWorker {
  private closing: Promise<void> | undefined;
  /** Jobs in progress with their lock tokens, to hand back on a forced shutdown. */
  private readonly active = new Map<string, { job: Job; token: string }>();

  private constructor(
    readonly id: string,
    private readonly options: InferenceWorkerOptions,
    private readonly redis: Redis,
    private readonly store: ObjectStore,
    private readonly reporter: StatusReporter,
    private readonly worker: Worker<InferenceJobData, InferenceResult>,
    private readonly webhooks: WebhookQueue,
  ) {}

  get backendKind(): BackendKind {
    return this.options.backend.kind;
  }

  static async start(options: InferenceWorkerOptions): Promise<InferenceWorker> {
    const { config, registry, backend, logger } = options;
    const id = `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
    const log = logger.child({ backend: backend.kind, workerId: id });

    const store = createObjectStore(config.storage);
    await store.init();
    const statuses = await backend.load(registry.servedBy(backend.kind));
    for (const [model, status] of Object.entries(statuses)) {
      if (status.state === 'ready') log.info({ model, versions: status.versions }, 'model ready');
      else log.warn({ model, reason: status.reason }, 'model unavailable');
    }

    const redis = createRedis(config.redis, 'blocking');
    const statusStore = new BackendStatusStore(
      redis,
      config.redis.prefix,
      config.worker.heartbeatMs * 3,
    );
    const lifecycle = new JobLifecycle(
      redis,
      new JobRecords(redis, config.redis.prefix, config.jobs.retentionSeconds),
    );
    const webhooks = new WebhookQueue(redis, config.redis.prefix, config);
    const processor = guardLifecycle(
      createInferenceProcessor({
        registry,
        store,
        backend,
        maxPixels: config.uploads.maxPixels,
        logger: log,
        beforeInference: (job) => checkNotCanceled(lifecycle, job),
      }),
      { lifecycle, webhooks, logger: log },
    );

    let self: InferenceWorker | undefined;
    const worker = new Worker<InferenceJobData, InferenceResult>(
      INFERENCE_QUEUES[backend.kind],
      async (job, token) => {
        if (token) self?.active.set(job.id!, { job, token });
        try {
          return await processor(job);
        } finally {
          self?.active.delete(job.id!);
        }
      },
      {
        connection: redis,
        prefix: config.redis.prefix,
        concurrency: config.worker.concurrency,
        lockDuration: config.worker.lockDurationMs,
        stalledInterval: config.worker.stalledIntervalMs,
        // A job whose worker died twice is more likely the cause than the victim.
        maxStalledCount: 2,
        autorun: false,
      },
    );
    worker.on('failed', (job, err) => {
      log.warn(
        {
          jobId: job?.id,
          requestId: job?.data.requestId,
          attempt: job?.attemptsMade,
          err: err.message,
        },
        'job attempt failed',
      );
    });
    worker.on('stalled', (jobId) => {
      log.warn(
        { jobId },
        'job stalled (its worker stopped without finishing it): back in the queue',
      );
    });
    worker.on('error', (err) => log.error({ err: err.message }, 'worker error'));

    const reporter = new StatusReporter(
      statusStore,
      id,
      backend.kind,
      statuses,
      config.worker.heartbeatMs,
      log,
    );
    self = new InferenceWorker(id, options, redis, store, reporter, worker, webhooks);
    await reporter.start();
    void worker.run().catch((err: Error) => log.error({ err: err.message }, 'worker stopped'));
    await worker.waitUntilReady();
    log.info(
      { queue: INFERENCE_QUEUES[backend.kind], concurrency: config.worker.concurrency },
      'worker started',
    );
    return self;
  }

  /** Idempotent; runs every cleanup step even when one fails. */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    const { config, logger, backend } = this.options;
    const log = logger.child({ backend: backend.kind });
    log.info({ active: this.active.size }, 'worker closing: finishing active jobs');
    // pause() stops taking jobs and waits for the active ones. close() is called once, below: a
    // second close() returns the first one's promise, so a forced close after a graceful one
    // would still wait for a hung job.
    const graceful = this.worker.pause().then(() => true);
    const expired = new Promise<false>((resolve) =>
      setTimeout(() => resolve(false), config.shutdownTimeoutMs).unref(),
    );
    const finished = await Promise.race([graceful, expired]);
    if (!finished) {
      // Hand unfinished jobs back at once instead of waiting for their locks to expire.
      const returned = await Promise.allSettled(
        [...this.active.values()].map(({ job, token }) => job.moveToWait(token)),
      );
      log.warn(
        { returned: returned.length },
        'shutdown timeout: active jobs returned to the queue',
      );
    }
    await this.worker.close(!finished).catch(() => undefined);
    const steps = await Promise.allSettled([
      this.reporter.stop(),
      backend.close(),
      this.store.close(),
      this.webhooks.close(),
    ]);
    await this.redis.quit().catch(() => this.redis.disconnect());
    for (const step of steps) {
      if (step.status === 'rejected') log.warn({ err: String(step.reason) }, 'cleanup step failed');
    }
    log.info('worker closed');
  }
}
