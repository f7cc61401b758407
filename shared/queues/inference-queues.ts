import { Job, type JobState, SpanKind, type Telemetry, TelemetryAttributes } from 'bullmq';
import type { ChainableCommander } from 'ioredis';
import type { Config } from '../config/config.js';
import type { InferenceResult } from '../jobs/inference-result.js';
import type { JobSpec } from '../jobs/job-spec.js';
import { BACKEND_KINDS, type BackendKind } from '../models/model-spec.js';
import type { RedisClient } from '../redis/redis.js';
import { AddConnection } from './add-connection.js';
import { type InferenceQueue, openInferenceQueue } from './bullmq-objects.js';
import { INFERENCE_QUEUES, JobName, type QueueName } from './queues.js';

export type InferenceJob = Job<JobSpec, InferenceResult, JobName.Infer>;

/**
 * What the job resource is read from: BullMQ's job, or the same fields as the API knows them from
 * its own add and the job's completion event.
 */
export type JobEntry = Pick<
  InferenceJob,
  'id' | 'data' | 'timestamp' | 'processedOn' | 'finishedOn' | 'attemptsMade'
> & {
  opts: { priority?: number };
  /** Why the job failed (`CODE: detail`), once it has. */
  failedReason?: string;
  /** The worker's result, once the job has completed. */
  returnvalue?: InferenceResult | null;
};

export interface FoundJob {
  backend: BackendKind;
  job: JobEntry;
  state: JobState | 'unknown';
}

export interface InferenceQueuesOptions {
  /** The Redis key prefix (REDIS_PREFIX). */
  prefix: string;
  /** Attempts, backoff and retention of every job added. */
  jobs: Config['jobs'];
  /** OpenTelemetry for BullMQ: a producer span per job, its context carried in the job. */
  telemetry?: Telemetry;
}

/**
 * The producer side of the inference queues, one BullMQ queue per backend, sharing one Redis
 * connection. Job ids are ours (UUIDs), so a job can be waited for before it is added.
 */
export class InferenceQueues {
  private readonly queues: Record<BackendKind, InferenceQueue>;
  private readonly adds: AddConnection;

  constructor(
    private readonly redis: RedisClient,
    { prefix, jobs, telemetry }: InferenceQueuesOptions,
  ) {
    this.queues = Object.fromEntries(
      BACKEND_KINDS.map((backend) => [
        backend,
        openInferenceQueue(backend, { connection: redis, prefix, jobs, telemetry }),
      ]),
    ) as InferenceQueues['queues'];
    this.adds = new AddConnection(redis);
  }

  queue(backend: BackendKind): InferenceQueue {
    return this.queues[backend];
  }

  async add(
    backend: BackendKind,
    jobId: string,
    data: JobSpec,
    options: { priority?: number } = {},
  ): Promise<InferenceJob> {
    return (await this.queues[backend].add(JobName.Infer, data, {
      jobId,
      ...options,
    })) as InferenceJob;
  }

  /**
   * Adds a job as {@link add} does (the queue's default options, our id, a producer span when
   * tracing is on), in one MULTI with the commands `alongside` queues first (the job's record) and
   * the one command `after` queues after it (the fair scheduler's admission, whose reply comes back
   * as `afterReply`). So they exist together or not at all, and cost one round trip. BullMQ adds
   * into a caller's transaction the same way for its own bulk adds and flows. The MULTI is made on
   * a connection of its own ({@link AddConnection}): `alongside` and `after` may queue plain
   * commands and `fairAdmit`, no other script.
   */
  async addAtomically<Staged>(
    backend: BackendKind,
    jobId: string,
    data: JobSpec,
    options: { priority?: number; delay?: number },
    alongside: (transaction: ChainableCommander) => Staged,
    after?: (transaction: ChainableCommander) => void,
  ): Promise<{ job: InferenceJob; staged: Staged; afterReply?: unknown }> {
    const queue = this.queues[backend];
    const destination = `${queue.name}.${JobName.Infer}`;
    return queue.trace(SpanKind.PRODUCER, 'add', destination, async (span, context) => {
      const transaction = await this.adds.multi();
      const staged = alongside(transaction);
      const opts = {
        ...queue.defaultJobOptions,
        ...options,
        jobId,
        ...(context ? { telemetry: { metadata: context } } : {}),
      };
      const job = new Job(queue, JobName.Infer, data, opts, jobId) as InferenceJob;
      // The MULTI's replies leave out MULTI itself, which the transaction's length counts.
      const addIndex = transaction.length - 1;
      // Queued on the transaction at once; what it resolves to is read from the MULTI's replies.
      job
        .addJob(transaction as unknown as Parameters<InferenceJob['addJob']>[0])
        .catch(() => undefined);
      after?.(transaction);
      const replies = (await transaction.exec()) ?? [];
      for (const [err] of replies) if (err) throw err;
      const added = replies[addIndex]?.[1];
      if (typeof added === 'number' && added < 0) {
        throw new Error(`BullMQ refused the job (code ${added})`);
      }
      span?.setAttributes({
        [TelemetryAttributes.JobName]: JobName.Infer,
        [TelemetryAttributes.JobId]: jobId,
      });
      return after ? { job, staged, afterReply: replies.at(-1)?.[1] } : { job, staged };
    });
  }

  /**
   * The job and its state in one backend's queue. The state is read first: read together, a job
   * finishing in between could pair a `completed` state with its hash from before, with no result.
   */
  async get(backend: BackendKind, jobId: string): Promise<FoundJob | undefined> {
    const queue = this.queues[backend];
    const state = await queue.getJobState(jobId);
    const job = await queue.getJob(jobId);
    return job ? { backend, job: job as InferenceJob, state } : undefined;
  }

  /** Per job: finished (completed or failed) or removed. One round trip for the whole list. */
  async areFinished(queueName: QueueName, jobIds: string[]): Promise<boolean[]> {
    const backend = BACKEND_KINDS.find((b) => INFERENCE_QUEUES[b] === queueName);
    if (!backend) throw new Error(`Unknown inference queue ${queueName}`);
    const queue = this.queues[backend];
    const pipeline = this.redis.pipeline();
    // Every job hash has `timestamp`, so it tells a removed job from one that has not finished.
    for (const id of jobIds) pipeline.hmget(queue.toKey(id), 'finishedOn', 'timestamp');
    const results = (await pipeline.exec()) ?? [];
    return jobIds.map((_, i) => {
      const [err, fields] = results[i] ?? [new Error('no reply'), null];
      if (err) throw err;
      const [finishedOn, timestamp] = fields as [string | null, string | null];
      // A job whose hash is gone was removed by retention or cancellation: nothing left to wait for.
      return finishedOn !== null || timestamp === null;
    });
  }

  async close(): Promise<void> {
    await Promise.allSettled([
      ...Object.values(this.queues).map((q) => q.close()),
      this.adds.close(),
    ]);
  }
}
