import type { BackendStatusCache } from '../../shared/backends/backend-status-cache.js';
import { errors } from '../../shared/errors/index.js';
import type { BackendKind } from '../../shared/models/model-spec.js';
import { INFERENCE_QUEUES } from '../../shared/queues/index.js';

/**
 * Admission control: new work for a backend whose queue already holds `maxWaiting` jobs that have
 * not started is refused with 503 QUEUE_FULL, instead of growing a backlog nobody will wait for.
 *
 * The count is the backend status cache's (refreshed every second with the routing picture, so no
 * Redis round trip per request) plus the jobs this process admitted since that count was read, so
 * a burst into one instance cannot overshoot by a refresh's worth. Other instances' admissions
 * since the last refresh are not seen: with N instances a queue can pass its limit by what the
 * others admit in one refresh interval.
 */
export class QueueAdmission {
  /** Per backend, when this process admitted each job not yet in the cached count. */
  private readonly admitted = new Map<BackendKind, number[]>();

  constructor(
    private readonly cache: BackendStatusCache,
    /** 0: no limit. */
    private readonly maxWaiting: number,
  ) {}

  /** Throws QUEUE_FULL when the backend's queue is full. */
  check(backend: BackendKind): void {
    if (this.maxWaiting <= 0) return;
    const waiting = this.waiting(backend);
    if (waiting !== undefined && waiting >= this.maxWaiting) {
      throw new errors.QUEUE_FULL(INFERENCE_QUEUES[backend], waiting, this.maxWaiting);
    }
  }

  /** {@link check}, then counts the job as admitted. */
  admit(backend: BackendKind): void {
    this.check(backend);
    if (this.maxWaiting <= 0) return;
    const times = this.admitted.get(backend) ?? [];
    times.push(Date.now());
    this.admitted.set(backend, times);
  }

  /** Undefined until the cache has counted the queue. */
  private waiting(backend: BackendKind): number | undefined {
    const counted = this.cache.snapshot(backend).queueWaiting;
    if (counted === undefined) return undefined;
    const asOf = this.cache.asOfMs;
    const times = this.admitted.get(backend) ?? [];
    // Admissions from before the count's reads began are in the count already.
    const since = times.findIndex((t) => t >= asOf);
    const recent = since < 0 ? [] : times.slice(since);
    this.admitted.set(backend, recent);
    return counted + recent.length;
  }
}
