import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { BackendStatusStore } from '../../shared/backends/backend-status.js';
import { type Config, loadConfig } from '../../shared/config/config.js';
import { JobRecords } from '../../shared/jobs/job-records.js';
import type { JobSpec } from '../../shared/jobs/job-spec.js';
import type { BackendKind } from '../../shared/models/model-spec.js';
import type { ModelRegistry } from '../../shared/models/registry.js';
import { FairScheduler } from '../../shared/queues/fair-scheduler.js';
import { JobName } from '../../shared/queues/index.js';
import { InferenceQueues } from '../../shared/queues/inference-queues.js';
import { redisOptions, waitForRedis } from '../../shared/redis/redis.js';
import { testSpec } from './job-spec.js';
import { cleanRedisPrefix, type TestServices, uniquePrefix } from './services.js';

/**
 * One test's Redis prefix with both inference queues, job records and worker reports: the state a
 * job moves through between the API and the workers, without either process. Tests of what happens
 * to queued jobs (fair turns, fallback to another backend, sweeping orphans) build on it.
 */
export interface JobWorld {
  config: Config;
  /** The world's command connection. */
  redis: Redis;
  queues: InferenceQueues;
  records: JobRecords;
  status: BackendStatusStore;
  /** Another connection to the world's Redis, closed with the world. */
  connect(purpose: 'command' | 'blocking'): Redis;
  /**
   * Reports one live worker of `backend` with every model of the world's registry ready (none
   * without a registry), as a worker's heartbeat would.
   */
  reportWorker(backend: BackendKind): Promise<void>;
  /**
   * Queues a job for TF Serving with its record, as the API does (`attempts` tries, 20 ms apart).
   * A job with a webhook is an async one and its record keeps the webhook.
   */
  submit(model: string, data?: Partial<JobSpec>, attempts?: number): Promise<string>;
  /** Runs `close` when the world closes, before its queues and connections (last added, first). */
  onClose(close: () => Promise<unknown> | unknown): void;
  /** Closes what the world and its users opened, and deletes the prefix's keys. */
  close(): Promise<void>;
}

export interface JobWorldOptions {
  /** The models workers report ready; a world without one reports none. */
  registry?: ModelRegistry;
  /** Settings besides the Redis URL and prefix. */
  env?: Record<string, string>;
}

/** A world on `services`' Redis, with a prefix of its own. */
export async function createJobWorld(
  services: TestServices,
  { registry, env = {} }: JobWorldOptions = {},
): Promise<JobWorld> {
  const prefix = uniquePrefix();
  const config = loadConfig({ REDIS_URL: services.redisUrl, REDIS_PREFIX: prefix, ...env });
  const connections: Redis[] = [];
  const closers: (() => Promise<unknown> | unknown)[] = [];
  const connect = (purpose: 'command' | 'blocking') => {
    const redis = new Redis(services.redisUrl, redisOptions(config.redis, purpose));
    connections.push(redis);
    return redis;
  };
  const redis = connect('command');
  await waitForRedis(redis, 5_000);
  const queues = new InferenceQueues(redis, { prefix, jobs: config.jobs });
  const records = new JobRecords(redis, {
    prefix,
    retentionSeconds: 600,
    maxPerOwner: 1000,
  });
  const status = new BackendStatusStore(redis, prefix);
  return {
    config,
    redis,
    queues,
    records,
    status,
    connect,
    async reportWorker(backend) {
      await status.report({
        workerId: `${backend}-test`,
        backend,
        host: 'test',
        pid: 1,
        startedAt: Date.now(),
        reportedAt: Date.now(),
        expiresAt: Number.MAX_SAFE_INTEGER,
        models: Object.fromEntries(
          (registry?.list() ?? []).map((m) => [m.name, { state: 'ready', versions: ['1'] }]),
        ),
      });
    },
    async submit(model, data = {}, attempts = 3) {
      const id = randomUUID();
      const spec = testSpec({
        model,
        requestId: 'test',
        mode: data.webhook ? 'async' : 'sync',
        ...data,
      });
      await records.create({ id, spec, backend: 'tensorflow', createdAt: Date.now() });
      await queues.queue('tensorflow').add(JobName.Infer as never, spec, {
        jobId: id,
        attempts,
        backoff: { type: 'fixed', delay: 20 },
      });
      return id;
    },
    onClose(close) {
      closers.push(close);
    },
    async close() {
      for (const close of closers.reverse()) await Promise.resolve(close()).catch(() => undefined);
      await queues.close();
      for (const connection of connections) connection.disconnect();
      await cleanRedisPrefix(services.redisUrl, prefix);
    },
  };
}

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
