import type { BackendSnapshot, BackendStatusStore } from '../../shared/backends/backend-status.js';
import type { Logger } from '../../shared/logging/logger.js';
import { BACKEND_KINDS, type BackendKind } from '../../shared/models/model-spec.js';

/** Counts the jobs waiting (not started yet) and running in a backend's queue. */
export type QueueDepthReader = (
  backend: BackendKind,
) => Promise<{ waiting: number; active: number }>;

export interface BackendStatusCacheOptions {
  /** Where the workers' reports are. */
  store: BackendStatusStore;
  /** How often the picture is refreshed. */
  intervalMs: number;
  logger: Logger;
  /** Counts each backend's queue at every refresh; absent: no queue depths. */
  queueDepth?: QueueDepthReader;
}

/**
 * The latest backend picture, refreshed from Redis in the background every `intervalMs`, so that
 * routing a request costs no Redis round trip. A refresh that fails keeps the last good picture;
 * `ageMs` says how old it is (GET /health shows it). With a `queueDepth` reader, each refresh also
 * counts every backend's queue (for the least-loaded routing strategy and admission control).
 */
export class BackendStatusCache {
  private snapshots = new Map<BackendKind, BackendSnapshot>();
  private refreshedAt = 0;
  private asOf = 0;
  private timer: NodeJS.Timeout | undefined;

  private readonly store: BackendStatusStore;
  private readonly intervalMs: number;
  private readonly logger: Logger;
  private readonly queueDepth: QueueDepthReader | undefined;

  constructor(options: BackendStatusCacheOptions) {
    this.store = options.store;
    this.intervalMs = options.intervalMs;
    this.logger = options.logger;
    this.queueDepth = options.queueDepth;
  }

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
    const asOf = Date.now();
    const snapshots = await Promise.all(
      BACKEND_KINDS.map(async (b) => {
        const [snapshot, load] = await Promise.all([this.store.read(b), this.queueDepth?.(b)]);
        if (load === undefined) return snapshot;
        return { ...snapshot, queueDepth: load.waiting + load.active, queueWaiting: load.waiting };
      }),
    );
    this.snapshots = new Map(snapshots.map((s) => [s.backend, s]));
    this.refreshedAt = Date.now();
    this.asOf = asOf;
  }

  snapshot(backend: BackendKind): BackendSnapshot {
    return this.snapshots.get(backend) ?? { backend, workers: [], models: {} };
  }

  /**
   * When the current picture's reads began (epoch ms; 0 before the first refresh): what happened
   * after this may be missing from it.
   */
  get asOfMs(): number {
    return this.asOf;
  }

  get ageMs(): number {
    return Date.now() - this.refreshedAt;
  }
}
