import type { ChainableCommander } from 'ioredis';
import type { CachedResult } from '../cache/result-cache.js';
import type { BackendKind } from '../models/model-spec.js';
import { withoutUndefined } from '../objects/without-undefined.js';
import type { RedisClient } from '../redis/redis.js';
import { defineCommands } from '../redis/redis-commands.js';
import type { WebhookSubscription } from '../webhooks/webhook-subscription.js';
import type { JobMode, JobSpec } from './job-spec.js';
import { OwnerJobs } from './owner-jobs.js';

/** The owner of jobs submitted while the API runs open (no API keys). */
export const ANONYMOUS_OWNER = 'anonymous';

/** One backend a job was sent to, and how it ended there if it moved on. */
export interface RouteStep {
  backend: BackendKind;
  at: number;
  /** Why the job left this backend (absent for the backend it is on now). */
  error?: { code: string; message: string };
}

/**
 * What the system knows of a job beyond its BullMQ entry: where it is now and the way it took
 * there. BullMQ keeps a job per queue; the record keeps the public job stable across queues
 * (fallback moves a job to another backend's queue under the same id).
 */
export interface JobRecord {
  id: string;
  /** What the client asked for, as far as the record keeps it. */
  spec: RecordedSpec;
  /** The backend whose queue holds the job now. */
  backend: BackendKind;
  route: RouteStep[];
  createdAt: number;
  /** Cancellation and the worker's final word, set only through JobLifecycle. */
  lifecycle?: JobLifecycleState;
  /**
   * The answer the job was given from the result cache when it was created: such a job has no
   * queue entry, never runs, and is succeeded from the start.
   */
  cachedResult?: CachedResult;
  /** The upload's size, counted in its owner's usage when the job ends. */
  imageBytes?: number;
  /**
   * The quota counters the submission was charged to (QuotaCounters), given back when the job ends
   * without a result through no fault of the tenant's (see `count-usage.lua`).
   */
  quotaCharge?: string[];
}

/**
 * The part of a job's spec its record keeps: what the job resource shows, and who may see the job
 * and hear of it. The worker's inputs (image, parameters, result-cache terms, pinning) travel in
 * the BullMQ job's data only; kept out of the record, they leave a sync job's record a compact hash
 * (every value under Redis's 64-byte listpack limit: about 300 bytes, not 600).
 */
export type RecordedSpec = Pick<
  JobSpec,
  'model' | 'version' | 'mode' | 'priority' | 'deadline' | 'webhook' | 'owner' | 'requestId'
>;

/**
 * A record as its creator gives it: with the job's whole spec (of which it keeps the recorded
 * part); the route starts at its backend; one with a `cachedResult` is settled succeeded as it is
 * written.
 */
export type NewJobRecord = Omit<JobRecord, 'route' | 'lifecycle' | 'spec'> & { spec: JobSpec };

export interface JobLifecycleState {
  cancelRequestedAt?: number;
  canceledAt?: number;
  /** The outcome a worker committed to before handing its result to the queue. */
  settled?: 'succeeded' | 'failed';
}

/** The record's fields a reader needs (not the inline image, which only its worker reads). */
const FIELDS = [
  'backend',
  'route',
  'created_at',
  'model',
  'version',
  'mode',
  'priority',
  'deadline',
  'webhook',
  'owner',
  'request_id',
  'cancel_requested_at',
  'canceled_at',
  'settled',
  'cached_result',
] as const;

/**
 * The field holding an image small enough to travel with its job (INLINE_IMAGE_MAX_BYTES) instead
 * of going to object storage. It goes once BullMQ has recorded the job's end (a job settled by a
 * worker that then dies runs again and needs it), or when a queued job is canceled. The Lua
 * scripts that read or drop it (`job-begin-1.lua`, `job-confirm-canceled-2.lua`) name it too.
 */
export const INLINE_IMAGE_FIELD = 'image';

export interface JobRecordsOptions {
  /** The Redis key prefix (REDIS_PREFIX). */
  prefix: string;
  /** How long a record outlives its job's end (JOB_RETENTION_SECONDS). */
  retentionSeconds: number;
  /**
   * Most jobs listed per owner (JOB_RETENTION_COUNT, see {@link OwnerJobs}); required, so no
   * process can build its records without the configured cap.
   */
  maxPerOwner: number;
}

/**
 * Job records in Redis, one hash per job (`<prefix>:job:<id>`), kept while the job lives and for
 * the retention (JOB_RETENTION_SECONDS) after it ends.
 * Every change of a job's place goes through here, so cancellation, deadlines and fallback can
 * join the same record.
 */
export class JobRecords {
  /** Each owner's jobs, newest first; a record with an owner is added there when created. */
  readonly owners: OwnerJobs;
  /** How long a record outlives its job's end (JOB_RETENTION_SECONDS). */
  readonly ttlSeconds: number;
  private readonly prefix: string;

  constructor(
    private readonly redis: RedisClient,
    options: JobRecordsOptions,
  ) {
    this.prefix = options.prefix;
    this.ttlSeconds = options.retentionSeconds;
    this.owners = new OwnerJobs(redis, options.prefix, {
      retentionSeconds: options.retentionSeconds,
      maxPerOwner: options.maxPerOwner,
    });
    defineCommands(redis);
  }

  /** The record's Redis key; JobLifecycle changes the same hash. */
  key(id: string): string {
    return `${this.prefix}:job:${id}`;
  }

  /** The list of the job's webhook delivery attempts, which lives and expires with the record. */
  deliveriesKey(id: string): string {
    return `${this.key(id)}:deliveries`;
  }

  /**
   * Writes a new job's record and its entry in the owner's index, in one transaction. `image`: the upload itself, for a job whose image travels inline rather than
   * through object storage.
   */
  async create(
    record: NewJobRecord,
    image?: Buffer,
    /** More commands for the same transaction (a job that ends as it is created: its usage). */
    also?: (transaction: ChainableCommander) => void,
  ): Promise<JobRecord> {
    const transaction = this.redis.multi();
    const created = this.stage(transaction, record, image);
    also?.(transaction);
    await transaction.exec();
    return created;
  }

  /**
   * Queues {@link create}'s commands on `transaction`, for a caller that adds the job in the same
   * MULTI (the record and its job then exist together, or not at all).
   */
  stage(transaction: ChainableCommander, record: NewJobRecord, image?: Buffer): JobRecord {
    const route: RouteStep[] = [{ backend: record.backend, at: record.createdAt }];
    const { spec } = record;
    const owner = this.owners.entry(spec.owner, record.id, record.createdAt);
    const fields: Record<string, string | Buffer> = {
      backend: record.backend,
      route: JSON.stringify(route),
      created_at: String(record.createdAt),
      ...specFields(spec),
    };
    if (image) fields[INLINE_IMAGE_FIELD] = image;
    if (record.imageBytes !== undefined) fields.image_bytes = String(record.imageBytes);
    if (record.quotaCharge?.length) fields.quota_keys = record.quotaCharge.join(' ');
    if (record.cachedResult) {
      fields.cached_result = JSON.stringify(record.cachedResult);
      fields.settled = 'succeeded';
    }
    transaction.hset(this.key(record.id), fields);
    // A job's record lives as long as the job, however long it waits in its queue: the retention
    // starts when the job ends (JobLifecycle's settle and cancel steps). A cached answer has ended.
    if (record.cachedResult) transaction.expire(this.key(record.id), this.ttlSeconds);
    transaction.zadd(owner.key, 0, owner.member);
    if (owner.trimBelow) transaction.zremrangebylex(owner.key, '-', `(${owner.trimBelow}`);
    if (owner.keep !== undefined) transaction.zremrangebyrank(owner.key, 0, -(owner.keep + 1));
    if (owner.ttlSeconds !== undefined) transaction.expire(owner.key, owner.ttlSeconds);
    const created: JobRecord = { ...record, route };
    if (record.cachedResult) created.lifecycle = { settled: 'succeeded' };
    return created;
  }

  /** Whether the job has a record (cheaper than reading it). */
  async exists(id: string): Promise<boolean> {
    return (await this.redis.exists(this.key(id))) === 1;
  }

  async get(id: string): Promise<JobRecord | undefined> {
    const values = await this.redis.hmget(this.key(id), ...FIELDS);
    const fields: Partial<Record<(typeof FIELDS)[number], string>> = {};
    FIELDS.forEach((name, i) => {
      const value = values[i];
      if (value !== null && value !== undefined) fields[name] = value;
    });
    if (!fields.backend) return undefined;
    const record: JobRecord = {
      id,
      spec: readSpec(fields),
      backend: fields.backend as BackendKind,
      route: JSON.parse(fields.route ?? '[]') as RouteStep[],
      createdAt: Number(fields.created_at),
      lifecycle: readLifecycle(fields),
    };
    if (fields.cached_result) {
      record.cachedResult = JSON.parse(fields.cached_result) as CachedResult;
    }
    return record;
  }

  /**
   * Moves a job to another backend (fallback): the step it leaves gets the error that made it move
   * on, and a new step starts. Only from the backend the record names, checked and rewritten in one
   * step (`job-forward-1.lua`), so a transition repeated after a crash changes nothing. Returns whether the record moved now (false: already moved, or
   * the record is gone).
   */
  async forward(
    id: string,
    move: { from: BackendKind; to: BackendKind; error: { code: string; message: string } },
    at = Date.now(),
  ): Promise<boolean> {
    const moved = await this.redis.jobForward(
      this.key(id),
      move.from,
      move.to,
      String(at),
      JSON.stringify(move.error),
    );
    return moved === 1;
  }
}

/**
 * The recorded spec as hash fields, one per setting (the usage count, `count-usage.lua`, reads
 * `owner` and `model`); a setting left unset is no field (ioredis would write it empty).
 */
function specFields(spec: RecordedSpec): Record<string, string> {
  const { model, version, mode, priority, deadline, webhook, owner, requestId } = spec;
  return withoutUndefined({
    model,
    version,
    mode,
    priority: priority === undefined ? undefined : String(priority),
    deadline: deadline === undefined ? undefined : String(deadline),
    webhook: webhook === undefined ? undefined : JSON.stringify(webhook),
    owner,
    request_id: requestId,
  });
}

/** The recorded spec from the hash; `specFields` writes every required one. */
function readSpec(fields: Partial<Record<string, string>>): RecordedSpec {
  return {
    model: fields.model!,
    version: fields.version,
    mode: fields.mode as JobMode,
    priority: numberField(fields.priority),
    deadline: numberField(fields.deadline),
    webhook:
      fields.webhook === undefined
        ? undefined
        : (JSON.parse(fields.webhook) as WebhookSubscription),
    owner: fields.owner!,
    requestId: fields.request_id!,
  };
}

function readLifecycle(fields: Partial<Record<string, string>>): JobLifecycleState {
  return {
    cancelRequestedAt: numberField(fields.cancel_requested_at),
    canceledAt: numberField(fields.canceled_at),
    settled: fields.settled as JobLifecycleState['settled'],
  };
}

/** A hash field that holds a number, if the hash has it. */
function numberField(value: string | undefined): number | undefined {
  return value ? Number(value) : undefined;
}
