import type { ReplicaHealth } from '../../shared/backends/backend-health.js';
import type { ModelStatus } from '../../shared/backends/backend-status.js';
import type { Logger } from '../../shared/logging/logger.js';
import type { BackendHealth, InferenceBackend } from '../backends/inference-backend.js';

export interface BackendMonitorOptions {
  backend: InferenceBackend;
  /** What `load` returned: the picture for backends that have no probe. */
  loaded: Record<string, ModelStatus>;
  intervalMs: number;
  logger: Logger;
  /** Called when the picture changed (a replica went up or down, a circuit or a model changed). */
  onChange(): void;
}

/**
 * Probes the worker's backend on an interval (TF Serving model status, v2 ready endpoints; an
 * in-process backend has nothing to probe) and keeps the picture the status reports carry. Each
 * change is logged and reported at once, not at the next heartbeat, so API processes stop routing
 * to a dead server within a refresh.
 */
export class BackendMonitor {
  private timer: NodeJS.Timeout | undefined;
  private last: BackendHealth;

  constructor(private readonly options: BackendMonitorOptions) {
    this.last = this.read();
    options.backend.onHealthChange?.(() => this.compare());
  }

  /** The latest picture. */
  current(): BackendHealth {
    return this.read();
  }

  start(): void {
    const { backend, intervalMs, logger } = this.options;
    if (!backend.probe) return;
    const probe = backend.probe.bind(backend);
    this.timer = setInterval(() => {
      probe().then(
        () => this.compare(),
        (err: Error) => logger.warn({ err: err.message }, 'backend probe failed'),
      );
    }, intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private read(): BackendHealth {
    return this.options.backend.health?.() ?? { models: this.options.loaded, replicas: [] };
  }

  private compare(): void {
    const now = this.read();
    const changes = [
      ...replicaChanges(this.last.replicas, now.replicas),
      ...modelChanges(this.last.models, now.models),
    ];
    this.last = now;
    if (changes.length === 0) return;
    for (const { level, fields, message } of changes) this.options.logger[level](fields, message);
    this.options.onChange();
  }
}

interface Change {
  level: 'info' | 'warn';
  fields: Record<string, unknown>;
  message: string;
}

function replicaChanges(before: ReplicaHealth[], after: ReplicaHealth[]): Change[] {
  const previous = new Map(before.map((r) => [r.url, r]));
  return after.flatMap((replica): Change[] => {
    const was = previous.get(replica.url);
    const changes: Change[] = [];
    if (was && was.healthy !== replica.healthy) {
      changes.push(
        replica.healthy
          ? { level: 'info', fields: { replica: replica.url }, message: 'backend server up' }
          : {
              level: 'warn',
              fields: { replica: replica.url, err: replica.error },
              message: 'backend server down',
            },
      );
    }
    if (was && was.circuit !== replica.circuit) {
      changes.push({
        level: replica.circuit === 'open' ? 'warn' : 'info',
        fields: { replica: replica.url, from: was.circuit, to: replica.circuit },
        message: `circuit ${replica.circuit.replace('_', '-')}`,
      });
    }
    return changes;
  });
}

function modelChanges(
  before: Record<string, ModelStatus>,
  after: Record<string, ModelStatus>,
): Change[] {
  return Object.entries(after).flatMap(([model, status]): Change[] => {
    const was = before[model];
    if (was?.state === status.state && was.versions.join() === status.versions.join()) return [];
    return status.state === 'ready'
      ? [{ level: 'info', fields: { model, versions: status.versions }, message: 'model ready' }]
      : [{ level: 'warn', fields: { model, reason: status.reason }, message: 'model unavailable' }];
  });
}
