import type { ReplicaHealth } from '../../../shared/backends/backend-health.js';
import { jobFailure, withCause } from '../../../shared/errors/index.js';
import {
  ReplicaBadAnswerError,
  ReplicaFault,
  ReplicaStatusError,
  ReplicaTimeoutError,
  ReplicaUnreachableError,
} from './remote-errors.js';
import { type BreakerOptions, type HttpRequest, type HttpResponse, Replica } from './replica.js';

export interface ReplicaPoolOptions {
  /** The servers' base URLs (replicas of one backend). */
  urls: readonly string[];
  /** What the servers are, for messages: "TF Serving", "ONNX Runtime server". */
  name: string;
  /** Budget of one call, failovers included. */
  timeoutMs: number;
  /** Keep-alive connections per replica. */
  connections: number;
  breaker: BreakerOptions;
}

/** A probe's outcome for one replica: its result, or why it failed. */
export type ProbeResult<T> = { url: string } & (
  | { ok: true; value: T }
  | { ok: false; error: Error }
);

/**
 * The replicas of one remote backend, used as one: each call goes to the replica with the fewest
 * requests in flight (turns taken on ties), skipping replicas whose circuit is open and preferring
 * those the last probe found up. A replica that cannot be reached, or answers that it cannot work
 * now (502/503/504/429), is left for the next one within the same call's time budget, so losing a
 * replica fails no request. Shared by the TF Serving and Open Inference Protocol backends.
 *
 * `send` throws catalogue job failures: BACKEND_TIMEOUT when the budget runs out,
 * BACKEND_UNAVAILABLE when no replica could answer.
 */
export class ReplicaPool {
  private readonly replicas: Replica[];
  private readonly listeners = new Set<() => void>();
  private turn = 0;

  constructor(private readonly options: ReplicaPoolOptions) {
    if (options.urls.length === 0) throw new RangeError(`${options.name}: no server URL given`);
    if (options.timeoutMs <= 0) throw new RangeError('timeoutMs must be positive');
    this.replicas = options.urls.map(
      (url) =>
        new Replica({
          url,
          connections: options.connections,
          breaker: options.breaker,
          onChange: () => this.changed(),
        }),
    );
  }

  get name(): string {
    return this.options.name;
  }

  get urls(): string[] {
    return this.replicas.map((r) => r.url);
  }

  /** Calls `listener` when a replica goes up or down or a circuit changes state. */
  onChange(listener: () => void): void {
    this.listeners.add(listener);
  }

  async send(request: HttpRequest, timeoutMs = this.options.timeoutMs): Promise<HttpResponse> {
    const deadline = Date.now() + timeoutMs;
    const tried = new Set<Replica>();
    const failures: string[] = [];
    let lastFault: ReplicaFault | undefined;
    for (;;) {
      const replica = this.pick(tried);
      if (!replica) break;
      tried.add(replica);
      const left = deadline - Date.now();
      if (left <= 0) throw jobFailure('BACKEND_TIMEOUT', timeoutMs);
      try {
        return await replica.send(request, left);
      } catch (err) {
        if (err instanceof ReplicaTimeoutError) {
          throw withCause(jobFailure('BACKEND_TIMEOUT', timeoutMs), err);
        }
        if (err instanceof ReplicaFault) {
          failures.push(this.describeFailure(replica.url, err));
          lastFault = err;
          if (err.failover) continue;
          throw withCause(
            jobFailure('BACKEND_UNAVAILABLE', `${this.name}: ${failures.at(-1)}`),
            err,
          );
        }
        // The circuit closed its half-open trial slot to us between pick and fire: try another.
        if (isOpenCircuit(err)) continue;
        throw err;
      }
    }
    const failure = jobFailure(
      'BACKEND_UNAVAILABLE',
      `${this.name}: ${this.describeRefusal(failures)}`,
    );
    throw lastFault ? withCause(failure, lastFault) : failure;
  }

  /** Whether some replica would take a request now (up at the last probe, circuit not open). */
  canServe(): boolean {
    return this.servingCount() > 0;
  }

  /** Replicas that would take a request now (up at the last probe, circuit not open). */
  servingCount(): number {
    return this.replicas.filter((r) => r.isHealthy && r.circuit !== 'open').length;
  }

  /**
   * Runs `check` against every replica at once, outside the breakers, each call bounded by
   * `timeoutMs`. A replica whose check resolves is marked up; one whose check throws is marked down
   * with the error. Returns each replica's outcome, in URL order.
   */
  async probe<T>(
    check: (send: (request: HttpRequest) => Promise<HttpResponse>, url: string) => Promise<T>,
    timeoutMs: number,
  ): Promise<ProbeResult<T>[]> {
    return Promise.all(
      this.replicas.map(async (replica): Promise<ProbeResult<T>> => {
        try {
          const value = await check((request) => replica.probe(request, timeoutMs), replica.url);
          replica.setHealth(true);
          return { url: replica.url, ok: true, value };
        } catch (err) {
          replica.setHealth(false, (err as Error).message);
          return { url: replica.url, ok: false, error: err as Error };
        }
      }),
    );
  }

  health(): ReplicaHealth[] {
    return this.replicas.map((r) => r.health());
  }

  async close(): Promise<void> {
    await Promise.allSettled(this.replicas.map((r) => r.close()));
  }

  /**
   * The replica for the next try: least requests in flight among those whose circuit admits one,
   * up ones first (a down verdict may be stale, so down ones are still tried last). Ties take
   * turns, so sequential requests alternate.
   */
  private pick(tried: Set<Replica>): Replica | undefined {
    const open = this.replicas.filter((r) => !tried.has(r) && r.admits);
    const up = open.filter((r) => r.isHealthy);
    const choices = up.length > 0 ? up : open;
    if (choices.length === 0) return undefined;
    const start = this.turn++ % choices.length;
    let best = choices[start]!;
    for (let i = 1; i < choices.length; i++) {
      const candidate = choices[(start + i) % choices.length]!;
      if (candidate.outstanding < best.outstanding) best = candidate;
    }
    return best;
  }

  /**
   * What a client may read of a failed call or probe (a job's error, a model's reason): servers are
   * named by their place in the list, not their address, and their answers are not quoted (the
   * admin's GET /health and the worker's log lines have those).
   */
  describeFailure(url: string, err: unknown): string {
    const server = `server ${this.urls.indexOf(url) + 1} of ${this.replicas.length}`;
    if (err instanceof ReplicaStatusError) return `${server} answered HTTP ${err.status}`;
    if (err instanceof ReplicaBadAnswerError)
      return `${server} answered with a body that is not JSON`;
    if (err instanceof ReplicaTimeoutError) {
      return `${server} did not answer within ${err.timeoutMs} ms`;
    }
    if (err instanceof ReplicaUnreachableError) {
      const code = (err.cause as { code?: string } | undefined)?.code;
      return `${server} is unreachable${code ? ` (${code})` : ''}`;
    }
    return `${server} failed its health probe`;
  }

  private describeRefusal(failures: string[]): string {
    if (failures.length > 0) return failures.join('; ');
    const open = this.replicas.filter((r) => r.circuit === 'open').length;
    return `every server's circuit is open after repeated failures (${open} of ${this.replicas.length} open)`;
  }

  private changed(): void {
    for (const listener of this.listeners) listener();
  }
}

function isOpenCircuit(err: unknown): boolean {
  return (err as { code?: string }).code === 'EOPENBREAKER';
}
