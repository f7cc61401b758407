import type { BackendKind } from '../models/model-spec.js';
import type { RedisClient } from '../redis/redis.js';
import type { ReplicaHealth } from './backend-health.js';

export type ModelState = 'ready' | 'unavailable';

export interface ModelStatus {
  state: ModelState;
  /** Versions this worker can serve, newest first. */
  versions: string[];
  /**
   * Why the model cannot be served, in words any client may read (GET /models, MODEL_UNAVAILABLE):
   * no file paths, server addresses or server answers.
   */
  reason?: string;
  /** The operator's words for it, with those: only the admin's GET /health shows them. */
  detail?: string;
  /** Remote backends: per replica URL, whether it has the model ready (and if not, why). */
  replicas?: Record<
    string,
    { state: ModelState; versions: string[]; reason?: string; detail?: string }
  >;
}

/** What one worker process says about itself, refreshed every heartbeat. */
export interface WorkerReport {
  workerId: string;
  backend: BackendKind;
  host: string;
  pid: number;
  startedAt: number;
  reportedAt: number;
  /**
   * Until when this report holds: the worker's own heartbeat decides it (a few heartbeats ahead),
   * so readers need not know how often each worker reports.
   */
  expiresAt: number;
  models: Record<string, ModelStatus>;
  /** Jobs this worker runs at once. */
  concurrency?: number;
  /** Remote backends: the servers this worker calls, with their health and circuit state. */
  replicas?: ReplicaHealth[];
}

/** The merged picture of one backend: every live worker's report. */
export interface BackendSnapshot {
  backend: BackendKind;
  workers: WorkerReport[];
  /** Per model: ready when any live worker can serve it. */
  models: Record<string, ModelStatus>;
  /** Jobs waiting or running in the backend's queue, when the reader counts them. */
  queueDepth?: number;
  /** Of those, the jobs not started yet (waiting, prioritized, delayed): admission control. */
  queueWaiting?: number;
}

/** How long after expiry a report is deleted: long enough that no clock skew makes it premature. */
const PRUNE_AFTER_MS = 60_000;

/**
 * Worker reports in Redis, one hash per backend (field: worker id), so every API process sees the
 * same picture. A report past its `expiresAt` belongs to a worker that stopped without saying so:
 * readers ignore it, and delete it a while later. An entry that does not parse is ignored and
 * deleted, so one bad write cannot freeze the picture.
 */
export class BackendStatusStore {
  constructor(
    private readonly redis: RedisClient,
    private readonly prefix: string,
  ) {}

  private key(backend: BackendKind): string {
    return `${this.prefix}:backend-status:${backend}`;
  }

  async report(report: WorkerReport): Promise<void> {
    await this.redis.hset(this.key(report.backend), report.workerId, JSON.stringify(report));
  }

  async remove(backend: BackendKind, workerId: string): Promise<void> {
    await this.redis.hdel(this.key(backend), workerId);
  }

  async read(backend: BackendKind, now = Date.now()): Promise<BackendSnapshot> {
    const entries = await this.redis.hgetall(this.key(backend));
    const workers: WorkerReport[] = [];
    const expired: string[] = [];
    for (const [workerId, json] of Object.entries(entries)) {
      const report = parseReport(json);
      if (report && now <= report.expiresAt) workers.push(report);
      else if (!report || now > report.expiresAt + PRUNE_AFTER_MS) expired.push(workerId);
    }
    if (expired.length > 0) await this.redis.hdel(this.key(backend), ...expired);
    return { backend, workers, models: mergeModels(workers) };
  }
}

function parseReport(json: string): WorkerReport | undefined {
  try {
    const report = JSON.parse(json) as WorkerReport;
    return typeof report.expiresAt === 'number' ? report : undefined;
  } catch {
    return undefined;
  }
}

function mergeModels(workers: WorkerReport[]): Record<string, ModelStatus> {
  const merged: Record<string, ModelStatus> = {};
  for (const worker of workers) {
    for (const [name, status] of Object.entries(worker.models)) {
      const seen = merged[name];
      if (!seen || (seen.state !== 'ready' && status.state === 'ready')) {
        merged[name] = { ...status, versions: [...status.versions] };
      } else if (seen.state === 'ready' && status.state === 'ready') {
        seen.versions = [...new Set([...seen.versions, ...status.versions])].sort(byVersionDesc);
      }
    }
  }
  return merged;
}

export function byVersionDesc(a: string, b: string): number {
  return Number(b) - Number(a);
}
