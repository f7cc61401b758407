import { hostname } from 'node:os';
import type { BackendStatusStore, WorkerReport } from '../shared/backends/backend-status.js';
import type { Logger } from '../shared/logging/logger.js';
import type { BackendKind } from '../shared/models/model-spec.js';

/** The changing part of a report: models, and for remote backends the replicas. */
export type ReportSource = () => Pick<WorkerReport, 'models' | 'replicas'>;

/**
 * Publishes this worker's model statuses (and its servers' health) every `intervalMs`, so API
 * processes know which models can be served and why the others cannot; `reportNow()` publishes a
 * change at once. A worker that dies stops reporting and ages out.
 */
export class StatusReporter {
  private timer: NodeJS.Timeout | undefined;
  private readonly startedAt = Date.now();
  private stopped = false;
  private pending: Promise<void> = Promise.resolve();

  constructor(
    private readonly store: BackendStatusStore,
    private readonly workerId: string,
    private readonly backend: BackendKind,
    private readonly source: ReportSource,
    private readonly intervalMs: number,
    private readonly logger: Logger,
    private readonly concurrency?: number,
  ) {}

  async start(): Promise<void> {
    await this.report();
    this.timer = setInterval(() => this.reportNow(), this.intervalMs);
    this.timer.unref();
  }

  /** Publishes the current picture now (failures are logged; the next beat tries again). */
  reportNow(): void {
    if (this.stopped) return;
    this.pending = this.report().catch((err: Error) =>
      this.logger.warn({ err: err.message }, 'status report failed'),
    );
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    // A report still on its way would put the entry back after the removal.
    await this.pending;
    await this.store.remove(this.backend, this.workerId);
  }

  private report(): Promise<void> {
    const now = Date.now();
    const report: WorkerReport = {
      workerId: this.workerId,
      backend: this.backend,
      host: hostname(),
      pid: process.pid,
      startedAt: this.startedAt,
      reportedAt: now,
      // Three missed heartbeats and readers count this worker gone.
      expiresAt: now + this.intervalMs * 3,
      concurrency: this.concurrency,
      ...this.source(),
    };
    return this.store.report(report);
  }
}
