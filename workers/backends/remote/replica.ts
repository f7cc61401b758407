import CircuitBreaker from 'opossum';
import { Pool } from 'undici';
import type { CircuitState, ReplicaHealth } from '../../../shared/backends/backend-health.js';
import {
  errorDetail,
  looksLikeJsonObject,
  ReplicaBadAnswerError,
  ReplicaFault,
  ReplicaStatusError,
  ReplicaTimeoutError,
  ReplicaUnreachableError,
} from './remote-errors.js';

export interface HttpRequest {
  method: 'GET' | 'POST';
  /** Path below the replica's base URL, starting with `/`. */
  path: string;
  /** A JSON document, already serialized (or, with its own content-type, other bytes). */
  body?: string | Uint8Array;
  /** Headers of a request with a body, over `content-type: application/json`. */
  headers?: Record<string, string>;
}

export interface HttpResponse {
  status: number;
  /** The body as text (decoded when first read). */
  readonly body: string;
  /** The body as it came. */
  bytes: Buffer;
  /** Response headers, names in lower case. */
  headers: Record<string, string | string[] | undefined>;
  /** The replica that answered. */
  replica: string;
}

export interface BreakerOptions {
  /** Percent of failed calls in the window that opens the circuit. */
  errorThresholdPercent: number;
  /** Calls in the window before the circuit may open. */
  volumeThreshold: number;
  windowMs: number;
  /** Open -> half-open after this long. */
  resetMs: number;
}

export interface ReplicaOptions {
  /** Base URL; a path after the host is kept as a prefix (a server behind a proxy path). */
  url: string;
  connections: number;
  breaker: BreakerOptions;
  onChange(): void;
}

const WINDOW_BUCKETS = 10;

/**
 * One remote server: a keep-alive connection pool (undici), a circuit breaker (opossum) around the
 * calls that count, and what the last health probe found. Probes bypass the breaker: they decide
 * `healthy`, real requests decide the circuit.
 */
export class Replica {
  readonly url: string;
  private readonly pool: Pool;
  private readonly basePath: string;
  private readonly breaker: CircuitBreaker<[HttpRequest, number], HttpResponse>;
  private inFlight = 0;
  /** Optimistic until the first probe: a new server is given a chance. */
  private healthy = true;
  private probeError: string | undefined;
  private checkedAt: number | undefined;

  constructor(private readonly options: ReplicaOptions) {
    const url = new URL(options.url);
    this.url = options.url;
    this.basePath = url.pathname.replace(/\/+$/, '');
    this.pool = new Pool(url.origin, {
      connections: options.connections,
      keepAliveTimeout: 30_000,
      keepAliveMaxTimeout: 60_000,
    });
    const { breaker } = options;
    this.breaker = new CircuitBreaker((request, timeoutMs) => this.call(request, timeoutMs), {
      // Timeouts are ours (per request, from the job's budget), not the breaker's.
      timeout: false,
      errorThresholdPercentage: breaker.errorThresholdPercent,
      volumeThreshold: breaker.volumeThreshold,
      rollingCountTimeout: Math.ceil(breaker.windowMs / WINDOW_BUCKETS) * WINDOW_BUCKETS,
      rollingCountBuckets: WINDOW_BUCKETS,
      resetTimeout: breaker.resetMs,
      rollingPercentilesEnabled: false,
      enableSnapshots: false,
      // Only the server's faults count; a request it rejects (4xx) says nothing about its health.
      errorFilter: (err: unknown) => !(err instanceof ReplicaFault),
    });
    this.breaker.on('open', () => options.onChange());
    this.breaker.on('halfOpen', () => options.onChange());
    this.breaker.on('close', () => options.onChange());
  }

  get circuit(): CircuitState {
    if (this.breaker.opened) return 'open';
    return this.breaker.halfOpen ? 'half_open' : 'closed';
  }

  /** The circuit lets a request through now (closed, or half-open with its trial slot free). */
  get admits(): boolean {
    return this.breaker.closed || (this.breaker.halfOpen && this.breaker.pendingClose);
  }

  get isHealthy(): boolean {
    return this.healthy;
  }

  get outstanding(): number {
    return this.inFlight;
  }

  /**
   * A request through the breaker. Resolves with any answer below 500 (except 429); rejects with a
   * {@link ReplicaFault} otherwise, or with opossum's EOPENBREAKER when the circuit refuses.
   */
  async send(request: HttpRequest, timeoutMs: number): Promise<HttpResponse> {
    this.inFlight++;
    try {
      return await this.breaker.fire(request, timeoutMs);
    } finally {
      this.inFlight--;
    }
  }

  /** A request outside the breaker, for health probes. Same answers and faults as {@link send}. */
  probe(request: HttpRequest, timeoutMs: number): Promise<HttpResponse> {
    return this.call(request, timeoutMs);
  }

  /**
   * Records a probe's outcome; tells the owner when the replica went up or down. A replica that
   * comes back up starts with a closed circuit: the failures that opened it were the outage the
   * probe has now seen end, and a half-open circuit would otherwise wait for traffic to close it
   * (reporting the server degraded meanwhile).
   */
  setHealth(healthy: boolean, error?: string): void {
    const changed = healthy !== this.healthy;
    this.healthy = healthy;
    this.probeError = healthy ? undefined : error;
    this.checkedAt = Date.now();
    if (changed && healthy && !this.breaker.closed) this.breaker.close();
    if (changed) this.options.onChange();
  }

  health(): ReplicaHealth {
    return {
      url: this.url,
      healthy: this.healthy,
      circuit: this.circuit,
      inFlight: this.inFlight,
      error: this.probeError,
      checkedAt: this.checkedAt,
    };
  }

  async close(): Promise<void> {
    this.breaker.shutdown();
    await this.pool.close();
  }

  private async call(request: HttpRequest, timeoutMs: number): Promise<HttpResponse> {
    const signal = AbortSignal.timeout(Math.max(1, timeoutMs));
    try {
      const response = await this.pool.request({
        method: request.method,
        path: this.basePath + request.path,
        signal,
        ...(request.body === undefined
          ? {}
          : {
              body: request.body,
              headers: { 'content-type': 'application/json', ...request.headers },
            }),
      });
      const bytes = Buffer.from(await response.body.arrayBuffer());
      let text: string | undefined;
      const answer: HttpResponse = {
        status: response.statusCode,
        bytes,
        headers: response.headers,
        replica: this.url,
        // A binary answer (tensors after a JSON header) is never decoded as a whole.
        get body() {
          text ??= bytes.toString('utf8');
          return text;
        },
      };
      if (response.statusCode >= 500 || response.statusCode === 429) {
        throw new ReplicaStatusError(this.url, response.statusCode, errorDetail(answer.body));
      }
      // Inference calls (the only POSTs) are answered with a JSON object by both protocols (a binary
      // answer starts with its JSON header); health GETs may be answered with an empty body
      // (Triton's /v2/health/ready). The first bytes are enough to tell.
      if (
        request.method === 'POST' &&
        response.statusCode < 300 &&
        !looksLikeJsonObject(bytes.toString('utf8', 0, 256))
      ) {
        throw new ReplicaBadAnswerError(this.url);
      }
      return answer;
    } catch (err) {
      if (err instanceof ReplicaFault) throw err;
      if (signal.aborted) throw new ReplicaTimeoutError(this.url, timeoutMs);
      const code = (err as { code?: string }).code;
      throw new ReplicaUnreachableError(
        this.url,
        `${this.url} is unreachable: ${code ? `${code} ` : ''}${(err as Error).message}`,
        { cause: err },
      );
    }
  }
}
