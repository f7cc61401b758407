import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { Job, Telemetry, Worker } from 'bullmq';
import { Registry } from 'prom-client';
import { configuredTenantIds } from '../shared/auth/configured-tenants.js';
import { BackendStatusStore } from '../shared/backends/backend-status.js';
import { ResultCache } from '../shared/cache/result-cache.js';
import type { Config } from '../shared/config/config.js';
import { causeOf } from '../shared/errors/index.js';
import type { InferenceResult } from '../shared/jobs/inference-result.js';
import { JobForwarder } from '../shared/jobs/job-forwarder.js';
import { JobLifecycle } from '../shared/jobs/job-lifecycle.js';
import { JobRecords } from '../shared/jobs/job-records.js';
import type { JobSpec } from '../shared/jobs/job-spec.js';
import type { Logger } from '../shared/logging/logger.js';
import {
  createUsageMetrics,
  createWorkerMetrics,
  type UsageMetrics,
  type WorkerMetrics,
} from '../shared/metrics/index.js';
import type { BackendKind, ModelDefinition } from '../shared/models/model-spec.js';
import type { ModelRegistry } from '../shared/models/registry.js';
import { openInferenceWorker } from '../shared/queues/bullmq-objects.js';
import { FairScheduler } from '../shared/queues/fair-scheduler.js';
import { INFERENCE_QUEUES, JobName } from '../shared/queues/index.js';
import { InferenceQueues } from '../shared/queues/inference-queues.js';
import { createRedis, type RedisClient, waitForRedis } from '../shared/redis/redis.js';
import { StatsStore } from '../shared/stats/stats-store.js';
import { createObjectStore, type ObjectStore } from '../shared/storage/index.js';
import { UsageLedger } from '../shared/usage/usage-ledger.js';
import { WebhookQueue } from '../shared/webhooks/webhook-queue.js';
import { batchLimitsOf, DynamicBatcher } from './backends/dynamic-batcher.js';
import type { InferenceBackend } from './backends/inference-backend.js';
import { instrumentBackend } from './backends/instrumented.backend.js';
import { closeRedis, drainWorker } from './drain-worker.js';
import { withFallback } from './fallback/with-fallback.js';
import { BackendMonitor } from './health/backend-monitor.js';
import { createInferenceProcessor } from './inference-processor.js';
import { wasForwarded } from './job-attempts.js';
import { dispatchJobs } from './job-handlers.js';
import { observeJobs } from './job-observer.js';
import { checkNotCanceled, createJobRunner } from './job-runner.js';
import { createResultCacheWriter } from './result-cache-writer.js';
import { StatusReporter } from './status-reporter.js';

/** BullMQ's reason for a job whose workers kept dying while running it (maxStalledCount). */
const STALLED_TOO_OFTEN = 'job stalled more than allowable limit';

export interface InferenceWorkerOptions {
  config: Config;
  registry: ModelRegistry;
  backend: InferenceBackend;
  logger: Logger;
  /**
   * Where this worker's metrics go (the process's /metrics).
   * @defaultValue a set on a registry of its own, read by nobody
   */
  metrics?: WorkerMetrics;
  /**
   * Where the usage of the jobs this worker ends is counted for Prometheus (the process's /metrics).
   * @defaultValue a set on a registry of its own, read by nobody
   */
  usageMetrics?: UsageMetrics;
  /** BullMQ telemetry when tracing is on: a span per job, in the trace of the request. */
  telemetry?: Telemetry;
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
    private readonly redis: RedisClient,
    private readonly commands: RedisClient,
    private readonly store: ObjectStore,
    private readonly reporter: StatusReporter,
    private readonly worker: Worker<JobSpec, InferenceResult>,
    private readonly monitor: BackendMonitor,
    private readonly queues: InferenceQueues,
    private readonly webhooks: WebhookQueue,
    private readonly stats: StatsStore,
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
      else log.warn({ model, reason: status.reason, detail: status.detail }, 'model unavailable');
    }

    // The blocking connection is BullMQ's (it waits for jobs by design); everything else the worker
    // asks of Redis goes through a bounded one, so an outage fails an attempt instead of hanging it.
    const redis = createRedis(config.redis, 'blocking');
    const commands = createRedis(config.redis, 'command');
    await waitForRedis(commands, config.redis.commandTimeoutMs);
    const statusStore = new BackendStatusStore(commands, config.redis.prefix);
    const models = registry.list().map((m) => m.name);
    const metrics =
      options.metrics ?? createWorkerMetrics(new Registry(), { backend: backend.kind, models });
    const stats = new StatsStore(commands, config.redis.prefix, {
      models,
      windowSeconds: config.stats.windowSeconds,
      // Job counts go to the shared stats once a second, not one write per job.
      flushIntervalMs: 1000,
      onFlushError: (err, failedWrites) =>
        log.warn({ err: String(err), failedWrites }, 'stats write failed'),
    });
    await stats.init();
    const records = new JobRecords(commands, {
      prefix: config.redis.prefix,
      retentionSeconds: config.jobs.retentionSeconds,
      maxPerOwner: config.jobs.retentionCount,
    });
    const usageMetrics =
      options.usageMetrics ??
      createUsageMetrics(new Registry(), { models, tenants: configuredTenantIds(config.auth) });
    const usage = new UsageLedger(commands, config.redis.prefix, {
      retentionDays: config.usage.retentionDays,
      onCounted: usageMetrics.recordJob,
    });
    const lifecycle = new JobLifecycle(commands, records, usage);
    const webhooks = new WebhookQueue(commands, config.redis.prefix, config);
    // Fallback adds jobs to the other backends' queues and moves their records.
    const queues = new InferenceQueues(commands, {
      prefix: config.redis.prefix,
      jobs: config.jobs,
    });
    const forwarder = new JobForwarder({ registry, records, queues, status: statusStore });
    // Only refills here: jobs are admitted (with their owner's weight) by the API.
    const scheduler = new FairScheduler(commands, config.redis.prefix, queues, {
      window: config.jobs.fairWindow,
    });
    const served = registry.servedBy(backend.kind);
    const limits = (model: ModelDefinition) =>
      batchLimitsOf(model, config.worker.batching, backend);
    // One batch fills while the one before it runs, so the worker holds two batches' worth of jobs.
    const largestBatch = Math.max(1, ...served.map((m) => limits(m).maxSize));
    const concurrency = Math.max(
      config.worker.concurrency,
      largestBatch > 1 ? 2 * largestBatch : 1,
    );
    const instrumented = instrumentBackend(backend, metrics);
    // Outermost first: the job's lifecycle (deadline, cancel, settle, webhooks), then fallback to
    // another backend, then the stages of one inference.
    const runner = createJobRunner(
      withFallback(
        createInferenceProcessor({
          registry,
          store,
          backend: instrumented,
          batcher: largestBatch > 1 ? new DynamicBatcher(instrumented, limits) : undefined,
          maxPixels: config.uploads.maxPixels,
          logger: log,
          beforeInference: (job) => checkNotCanceled(lifecycle, job),
        }),
        { backend, forwarder, logger: log },
      ),
      {
        lifecycle,
        webhooks,
        logger: log,
        remember: createResultCacheWriter({
          cache: new ResultCache(commands, config.redis.prefix),
          registry,
          backend: backend.kind,
          logger: log,
        }),
      },
    );

    const queueName = INFERENCE_QUEUES[backend.kind];
    const handle = dispatchJobs<JobSpec, InferenceResult>(queueName, {
      [JobName.Infer]: (job) => runner.run(job),
    });
    let self: InferenceWorker | undefined;
    const worker = openInferenceWorker(
      backend.kind,
      async (job, token) => {
        if (token) self?.active.set(job.id!, { job, token });
        // An async job taken leaves room in the window of its queue: the next in fair order goes in.
        if (job.opts.priority) {
          scheduler
            .refill(backend.kind)
            .catch((err: Error) => log.warn({ err: err.message }, 'fair scheduler refill failed'));
        }
        metrics.jobStarted();
        try {
          return await handle(job, token);
        } finally {
          metrics.jobEnded();
          self?.active.delete(job.id!);
        }
      },
      {
        connection: redis,
        prefix: config.redis.prefix,
        worker: config.worker,
        concurrency,
        telemetry: options.telemetry,
      },
    );
    // Once BullMQ has recorded a job's end, not before (see JobRunner.ended).
    const ended = (job: Job<JobSpec, InferenceResult>) => {
      runner
        .ended(job)
        .catch((e: Error) =>
          log.warn({ jobId: job.id, err: e.message }, 'inline image not released'),
        );
    };
    worker.on('failed', (job, err) => {
      // The job's error is the client's (no server address, path or answer); what caused it is the
      // operator's: in this log line and, for the admin, in the job's logs on the queue dashboard.
      const cause = causeOf(err);
      log.warn(
        {
          jobId: job?.id,
          requestId: job?.data.requestId,
          attempt: job?.attemptsMade,
          err: err.message,
          cause,
        },
        'job attempt failed',
      );
      if (job && cause) {
        job
          .log(`attempt ${job.attemptsMade}: ${err.message} (cause: ${cause})`)
          .catch((e: Error) => log.warn({ jobId: job.id, err: e.message }, 'job log not written'));
      }
      // BullMQ fails a job that stalled too often without running the processor, so its runner
      // never saw the end.
      if (job && err.message === STALLED_TOO_OFTEN) {
        runner
          .abandoned(job)
          .catch((e: Error) => log.warn({ jobId: job.id, err: e.message }, 'settling failed'));
      }
      // Failed for good here (a retry or a move to another backend still needs its image).
      if (job?.finishedOn !== undefined && !wasForwarded(err)) ended(job);
    });
    worker.on('completed', (job) => ended(job));
    observeJobs(worker, { metrics, stats });
    worker.on('stalled', (jobId) => {
      log.warn(
        { jobId },
        'job stalled (its worker stopped without finishing it): back in the queue',
      );
    });
    worker.on('error', (err) => log.error({ err: err.message }, 'worker error'));

    let reporter: StatusReporter | undefined;
    const monitor = new BackendMonitor({
      backend,
      loaded: statuses,
      intervalMs: config.backends.healthCheck.intervalMs,
      logger: log,
      onChange: () => reporter?.reportNow(),
    });
    reporter = new StatusReporter(
      statusStore,
      id,
      backend.kind,
      () => {
        const { models, replicas } = monitor.current();
        return replicas.length > 0 ? { models, replicas } : { models };
      },
      config.worker.heartbeatMs,
      log,
      concurrency,
    );
    self = new InferenceWorker(
      id,
      options,
      redis,
      commands,
      store,
      reporter,
      worker,
      monitor,
      queues,
      webhooks,
      stats,
    );
    await reporter.start();
    monitor.start();
    void worker.run().catch((err: Error) => log.error({ err: err.message }, 'worker stopped'));
    await worker.waitUntilReady();
    log.info(
      { queue: INFERENCE_QUEUES[backend.kind], concurrency, largestBatch },
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
    // Withdrawn first: the API stops routing here while the jobs in progress finish.
    const withdrawn = this.reporter.stop().catch((err: unknown) => {
      log.warn({ err: String(err) }, 'status report not withdrawn');
    });
    this.monitor.stop();
    await drainWorker(this.worker, {
      timeoutMs: config.shutdownTimeoutMs,
      active: this.active.values(),
      logger: log,
    });
    const steps = await Promise.allSettled([
      withdrawn,
      this.queues.close(),
      backend.close(),
      this.store.close(),
      this.webhooks.close(),
      this.stats.close(),
    ]);
    await Promise.all([closeRedis(this.commands), closeRedis(this.redis)]);
    for (const step of steps) {
      if (step.status === 'rejected') log.warn({ err: String(step.reason) }, 'cleanup step failed');
    }
    log.info('worker closed');
  }
}
