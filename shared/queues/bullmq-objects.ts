import {
  type DefaultJobOptions,
  type Processor,
  Queue,
  QueueEvents,
  type Telemetry,
  Worker,
  type WorkerOptions,
} from 'bullmq';
import type { Config } from '../config/config.js';
import type { InferenceResult } from '../jobs/inference-result.js';
import type { JobSpec } from '../jobs/job-spec.js';
import type { BackendKind } from '../models/model-spec.js';
import type { RedisClient } from '../redis/redis.js';
import { INFERENCE_QUEUES, type JobName, QueueName, type WebhookJobData } from './queues.js';

/**
 * Every BullMQ queue, worker and event stream of the system is opened here, each with the one key
 * prefix and the settings of its role. Callers say which queue and hand over connections; they
 * choose no BullMQ options of their own, so producers agree on retention and the inference workers
 * and the API's orphan taker agree on locks.
 */

/** Where BullMQ keeps a queue: the connection it uses and the key prefix of every queue. */
export interface QueueConnection {
  connection: RedisClient;
  prefix: string;
}

export type InferenceQueue = Queue<JobSpec, InferenceResult, JobName.Infer>;
export type InferenceWorkerOf = Worker<JobSpec, InferenceResult>;
export type WebhooksQueue = Queue<WebhookJobData, void, JobName.DeliverWebhook>;

/** The backoff type the webhooks worker computes itself (exponential, Retry-After honoured). */
export const WEBHOOK_BACKOFF = 'webhook';

/** Defaults for every inference job: attempts with exponential backoff, bounded retention. */
export function inferenceJobOptions(jobs: Config['jobs']): DefaultJobOptions {
  const retention = { age: jobs.retentionSeconds, count: jobs.retentionCount };
  return {
    attempts: jobs.attempts,
    backoff: { type: 'exponential', delay: jobs.backoffMs },
    removeOnComplete: retention,
    removeOnFail: retention,
  };
}

/** A backend's inference queue, producer side. */
export function openInferenceQueue(
  backend: BackendKind,
  where: QueueConnection & {
    jobs: Config['jobs'];
    /** OpenTelemetry for BullMQ: a producer span per job, its context carried in the job. */
    telemetry?: Telemetry;
  },
): InferenceQueue {
  return new Queue(INFERENCE_QUEUES[backend], {
    connection: where.connection,
    prefix: where.prefix,
    defaultJobOptions: inferenceJobOptions(where.jobs),
    telemetry: where.telemetry,
  });
}

/** The `webhooks` queue, producer side: retries with the webhooks worker's own backoff. */
export function openWebhooksQueue(
  where: QueueConnection & { config: Pick<Config, 'jobs' | 'webhooks'> },
): WebhooksQueue {
  const { jobs, webhooks } = where.config;
  const retention = { age: jobs.retentionSeconds, count: jobs.retentionCount };
  return new Queue(QueueName.Webhooks, {
    connection: where.connection,
    prefix: where.prefix,
    defaultJobOptions: {
      attempts: webhooks.attempts,
      backoff: { type: WEBHOOK_BACKOFF, delay: webhooks.backoffMs },
      removeOnComplete: retention,
      removeOnFail: retention,
    },
  });
}

/** The locks every consumer of an inference queue holds its jobs with. */
function inferenceLocks(
  worker: Config['worker'],
): Pick<WorkerOptions, 'lockDuration' | 'stalledInterval'> {
  return { lockDuration: worker.lockDurationMs, stalledInterval: worker.stalledIntervalMs };
}

/** A worker of a backend's inference queue (not started: call `run()`). */
export function openInferenceWorker(
  backend: BackendKind,
  processor: Processor<JobSpec, InferenceResult>,
  where: QueueConnection & {
    worker: Config['worker'];
    concurrency: number;
    telemetry?: Telemetry;
  },
): InferenceWorkerOf {
  return new Worker(INFERENCE_QUEUES[backend], processor, {
    connection: where.connection,
    prefix: where.prefix,
    concurrency: where.concurrency,
    ...inferenceLocks(where.worker),
    // A finished job whose result could not be written (Redis away) is written again after this
    // delay; BullMQ's 15 s would come after its lock ran out, and the job would run twice.
    runRetryDelay: Math.max(250, Math.min(15_000, where.worker.lockDurationMs / 4)),
    // A job whose worker died twice is more likely the cause than the victim.
    maxStalledCount: 2,
    autorun: false,
    telemetry: where.telemetry,
  });
}

/**
 * The API's stand-in consumer of a backend's queue while the backend has no worker: it takes jobs
 * by hand (no processor) and runs BullMQ's stalled-job check with the workers' locks.
 */
export function openOrphanTaker(
  backend: BackendKind,
  where: QueueConnection & { worker: Config['worker'] },
): InferenceWorkerOf {
  return new Worker(INFERENCE_QUEUES[backend], null, {
    connection: where.connection,
    prefix: where.prefix,
    autorun: false,
    ...inferenceLocks(where.worker),
    // Not the job's fault that its whole pool is gone: it is swept, not failed for stalling.
    maxStalledCount: Number.MAX_SAFE_INTEGER,
  });
}

/** A worker of the `webhooks` queue (not started: call `run()`). */
export function openWebhooksWorker(
  processor: Processor<WebhookJobData, void>,
  where: QueueConnection & {
    config: Pick<Config, 'worker' | 'webhooks'>;
    backoff: NonNullable<WorkerOptions['settings']>['backoffStrategy'];
  },
): Worker<WebhookJobData, void> {
  const { worker, webhooks } = where.config;
  return new Worker(QueueName.Webhooks, processor, {
    connection: where.connection,
    prefix: where.prefix,
    concurrency: webhooks.concurrency,
    // An attempt holds its job for at most the delivery timeout; the lock outlives it.
    lockDuration: Math.max(worker.lockDurationMs, webhooks.timeoutMs * 3),
    stalledInterval: worker.stalledIntervalMs,
    autorun: false,
    settings: { backoffStrategy: where.backoff },
  });
}

/**
 * A queue's event stream (completions, failures). BullMQ reads it on a duplicate of the given
 * client (a blocking XREAD), which it opens and closes itself; the client given is only its template.
 */
export function openQueueEvents(name: QueueName, where: QueueConnection): QueueEvents {
  return new QueueEvents(name, { connection: where.connection, prefix: where.prefix });
}
