import type { BackendKind } from '../../shared/models/model-spec.js';
import { INFERENCE_QUEUES } from '../../shared/queues/index.js';
import { errors } from '../http/errors.js';
import type { BackendStatusCache } from '../routing/backend-status-cache.js';

/**
 * One admitted submission, until it has been queued (or not). `track` settles it from the
 * submission's outcome: a replayed idempotent submission made no new job.
 */
export interface AdmissionTicket {
  track<T extends { replayed: boolean }>(submitted: Promise<T>): Promise<T>;
}

/** For submissions not counted (no limit). */
export const UNCOUNTED: AdmissionTicket = { track: (submitted) => submitted };

interface BackendAdmissions {
  /** Admitted, not yet queued or refused. */
  pending: number;
  /** When each job this process queued was added, until the cached count includes it. */
  queuedAt: number[];
}

/**
 * Admission control: new work for a backend whose queue already holds `maxWaiting` jobs that have
 * not started is refused with 503 QUEUE_FULL, instead of growing a backlog nobody will wait for.
 *
 * The count is the backend status cache's (refreshed every second with the routing picture, so no
 * Redis round trip per request), plus what this process has admitted since that count was read:
 * submissions still being stored and queued, and jobs queued after the count's reads began. So one
 * instance never passes the limit however fast requests arrive. Other instances' admissions since
 * the last refresh are not seen: with N instances a queue can pass its limit by what the others
 * admit in one refresh interval.
 */
export class QueueAdmission {
  private readonly admissions = new Map<BackendKind, BackendAdmissions>();

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

  /** {@link check}, then counts the submission until its ticket is settled. */
  admit(backend: BackendKind): AdmissionTicket {
    this.check(backend);
    if (this.maxWaiting <= 0) return UNCOUNTED;
    const admissions = this.of(backend);
    admissions.pending += 1;
    let settled = false;
    const settle = (queued: boolean) => {
      if (settled) return;
      settled = true;
      admissions.pending -= 1;
      if (queued) admissions.queuedAt.push(Date.now());
    };
    return {
      track: (submitted) =>
        submitted.then(
          (result) => {
            settle(!result.replayed);
            return result;
          },
          (err: unknown) => {
            settle(false);
            throw err;
          },
        ),
    };
  }

  /** Undefined until the cache has counted the queue. */
  private waiting(backend: BackendKind): number | undefined {
    const counted = this.cache.snapshot(backend).queueWaiting;
    if (counted === undefined) return undefined;
    const admissions = this.of(backend);
    // Jobs queued before the count's reads began are in the count already.
    const asOf = this.cache.asOfMs;
    const since = admissions.queuedAt.findIndex((t) => t >= asOf);
    admissions.queuedAt = since < 0 ? [] : admissions.queuedAt.slice(since);
    return counted + admissions.pending + admissions.queuedAt.length;
  }

  private of(backend: BackendKind): BackendAdmissions {
    let admissions = this.admissions.get(backend);
    if (!admissions) {
      admissions = { pending: 0, queuedAt: [] };
      this.admissions.set(backend, admissions);
    }
    return admissions;
  }
}
