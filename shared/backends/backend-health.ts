import type { BackendSnapshot, WorkerReport } from './backend-status.js';

/** A circuit breaker's state, as workers report it. */
export type CircuitState = 'closed' | 'open' | 'half_open';

/** One remote server (replica) of a backend, as one worker sees it. */
export interface ReplicaHealth {
  url: string;
  /** The last probe got an answer (any HTTP answer: the server is up). */
  healthy: boolean;
  /** This worker's circuit breaker for the replica: `open` means requests skip it. */
  circuit: CircuitState;
  /** Requests this worker has in flight to the replica. */
  inFlight: number;
  /** Why the last probe failed. */
  error?: string;
  /** Epoch ms of the last probe; absent before the first. */
  checkedAt?: number;
}

/** The replica state seen from outside: several workers may hold breakers for one URL. */
export interface ReplicaSummary {
  url: string;
  healthy: boolean;
  /** The most cautious state among the workers (open, then half_open, then closed). */
  circuit: CircuitState;
  /** How many workers' breakers are in each state. */
  circuits: Record<CircuitState, number>;
  inFlight: number;
  error?: string;
}

/** Whether a replica can take a request now (its circuit admits one and its last probe answered). */
export function replicaAvailable(replica: ReplicaHealth): boolean {
  return replica.healthy && replica.circuit !== 'open';
}

/**
 * Whether a worker can reach its backend: in-process workers (no replicas) always can; remote ones
 * when at least one replica is available.
 */
export function workerServing(report: WorkerReport): boolean {
  const replicas = report.replicas ?? [];
  return replicas.length === 0 || replicas.some(replicaAvailable);
}

/**
 * Whether a backend can serve anything now, and if not, why: it needs a live worker that reaches
 * at least one of its servers.
 */
export function backendServing(
  snapshot: BackendSnapshot,
): { serving: true } | { serving: false; reason: string; down: boolean } {
  if (snapshot.workers.length === 0) {
    return { serving: false, down: false, reason: `no ${snapshot.backend} worker is running` };
  }
  if (snapshot.workers.some(workerServing)) return { serving: true };
  // Counted, not listed: the reason reaches clients, and server addresses and their errors are
  // for operators (GET /health lists each replica).
  const replicas = summarizeReplicas(snapshot.workers);
  const down = replicas.filter((r) => !r.healthy).length;
  const open = replicas.filter((r) => r.healthy && r.circuit === 'open').length;
  const halfOpen = replicas.filter((r) => r.healthy && r.circuit === 'half_open').length;
  const described = [
    ...(down ? [`${down} down`] : []),
    ...(open ? [`${open} circuit open`] : []),
    ...(halfOpen ? [`${halfOpen} circuit half-open`] : []),
  ].join(', ');
  return {
    serving: false,
    down: true,
    reason: `no ${snapshot.backend} server can take requests (${replicas.length} servers: ${described})`,
  };
}

const CAUTION: Record<CircuitState, number> = { closed: 0, half_open: 1, open: 2 };

/** Per replica URL, the merged view of every worker's report, in the order workers list them. */
export function summarizeReplicas(workers: readonly WorkerReport[]): ReplicaSummary[] {
  const byUrl = new Map<string, ReplicaSummary>();
  for (const worker of workers) {
    for (const replica of worker.replicas ?? []) {
      let summary = byUrl.get(replica.url);
      if (!summary) {
        summary = {
          url: replica.url,
          healthy: false,
          circuit: 'closed',
          circuits: { closed: 0, open: 0, half_open: 0 },
          inFlight: 0,
        };
        byUrl.set(replica.url, summary);
      }
      summary.healthy ||= replica.healthy;
      summary.circuits[replica.circuit]++;
      summary.inFlight += replica.inFlight;
      if (CAUTION[replica.circuit] > CAUTION[summary.circuit]) summary.circuit = replica.circuit;
      if (!replica.healthy && replica.error) summary.error ??= replica.error;
    }
  }
  for (const summary of byUrl.values()) if (summary.healthy) delete summary.error;
  return [...byUrl.values()];
}
