import { hostname } from 'node:os';
import type {
  BackendStatusStore,
  ModelStatus,
  WorkerReport,
} from '../shared/backends/backend-status.js';
import type { Logger } from '../shared/logging/logger.js';
import type { BackendKind } from '../shared/models/model-spec.js';

/**
 * Publishes this worker's model statuses every `intervalMs`, so API processes know which models
 * can be served and why the others cannot. A worker that dies stops reporting and ages out.
 */
export class StatusReporter {
  private timer: NodeJS.Timeout | undefined;
  private readonly startedAt = Date.now();

  constructor(
    private readonly store: BackendStatusStore,
    private readonly workerId: string,
    private readonly backend: BackendKind,
    private readonly models: Record<string, ModelStatus>,
    private readonly intervalMs: number,
    private readonly logger: Logger,
  ) {}

  async start(): Promise<void> {
    await this.report();
    this.timer = setInterval(() => {
      this.report().catch((err: Error) =>
        this.logger.warn({ err: err.message }, 'status report failed'),
      );
    }, this.intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.store.remove(this.backend, this.workerId);
  }

  private report(): Promise<void> {
    const report: WorkerReport = {
      workerId: this.workerId,
      backend: this.backend,
      host: hostname(),
      pid: process.pid,
      startedAt: this.startedAt,
      reportedAt: Date.now(),
      models: this.models,
    };
    return this.store.report(report);
  }
}
