import type { Redis } from 'ioredis';
import type { BackendKind } from '../models/model-spec.js';

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
  model: string;
  /** The backend whose queue holds the job now. */
  backend: BackendKind;
  route: RouteStep[];
  createdAt: number;
  requestId: string;
}

/**
 * Job records in Redis, one hash per job (`<prefix>:job:<id>`), expiring with the job's retention.
 * Every change of a job's place goes through here, so cancellation, deadlines and fallback can
 * join the same record.
 */
export class JobRecords {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly ttlSeconds: number,
  ) {}

  private key(id: string): string {
    return `${this.prefix}:job:${id}`;
  }

  async create(record: Omit<JobRecord, 'route'>): Promise<JobRecord> {
    const route: RouteStep[] = [{ backend: record.backend, at: record.createdAt }];
    await this.redis
      .multi()
      .hset(this.key(record.id), {
        model: record.model,
        backend: record.backend,
        route: JSON.stringify(route),
        created_at: String(record.createdAt),
        request_id: record.requestId,
      })
      .expire(this.key(record.id), this.ttlSeconds)
      .exec();
    return { ...record, route };
  }

  async get(id: string): Promise<JobRecord | undefined> {
    const fields = await this.redis.hgetall(this.key(id));
    if (!fields.backend) return undefined;
    return {
      id,
      model: fields.model ?? '',
      backend: fields.backend as BackendKind,
      route: JSON.parse(fields.route ?? '[]') as RouteStep[],
      createdAt: Number(fields.created_at),
      requestId: fields.request_id ?? '',
    };
  }

  async delete(id: string): Promise<void> {
    await this.redis.del(this.key(id));
  }
}
