import type { Logger } from '../logging/logger.js';
import { BACKEND_KINDS, type BackendKind } from '../models/model-spec.js';
import type { BackendSnapshot, BackendStatusStore } from './backend-status.js';

/** Counts the jobs waiting or running in a backend's queue. */
export type QueueDepthReader = (backend: BackendKind) => Promise<number>;

/**
 * The latest backend picture, refreshed from Redis in the background every `intervalMs`, so that
 * routing a request costs no Redis round trip. A refresh that fails keeps the last good picture;
 * `ageMs` says how old it is (GET /health shows it). With a `queueDepth` reader, each refresh also counts
 * every backend's queue (for the least-loaded routing strategy).
 */
export class BackendStatusCache {
  private snapshots = new Map<BackendKind, BackendSnapshot>();
  private refreshedAt = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly store: BackendStatusStore,
    private readonly intervalMs: number,
    private readonly logger: Logger,
    private readonly queueDepth?: QueueDepthReader,
  ) {}

  async start(): Promise<void> {
    await this.refresh();
    this.timer = setInterval(() => {
      this.refresh().catch((err: Error) =>
        this.logger.warn({ err: err.message }, 'backend status refresh failed'),
      );
    }, this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  async refresh(): Promise<void> {
    const snapshots = await Promise.all(
      BACKEND_KINDS.map(async (b) => {
        const [snapshot, depth] = await Promise.all([this.store.read(b), this.queueDepth?.(b)]);
        return depth === undefined ? snapshot : { ...snapshot, queueDepth: depth };
      }),
    );
    this.snapshots = new Map(snapshots.map((s) => [s.backend, s]));
    this.refreshedAt = Date.now();
  }

  snapshot(backend: BackendKind): BackendSnapshot {
    return this.snapshots.get(backend) ?? { backend, workers: [], models: {} };
  }

  get ageMs(): number {
    return Date.now() - this.refreshedAt;
  }
}
