import { randomUUID } from 'node:crypto';
import { imageForm } from '../../support/http.js';

export interface TrafficOptions {
  /** The API's base URL. */
  baseUrl: string;
  headers: Record<string, string>;
  model: string;
  image: Buffer;
  /** Clients sending at once, each one request after the other. */
  concurrency: number;
  /** Share of requests sent as async jobs (`POST /jobs`), the rest as sync `/predict`. */
  asyncShare: number;
  /** Where async jobs' `completed` webhooks go. */
  webhookUrl: string;
  /** How long a client keeps retrying one request (same `Idempotency-Key`) before it gives up. */
  patienceMs: number;
  /** A client's bound on one try. @defaultValue 30 s */
  tryTimeoutMs?: number;
  /** Pause between a client's requests, to send at a steady rate. @defaultValue 0 */
  pauseMs?: number;
}

/** One HTTP try of a request. */
export interface Try {
  at: number;
  ms: number;
  /** HTTP status, or 0 when no answer came (refused, reset, timed out). */
  status: number;
  code?: string;
  /** The job the answer named (accepted, or failed with `job_id`): not a refusal. */
  job?: string;
}

/** One request as its client saw it: every try, and how it ended. */
export interface SentRequest {
  kind: 'sync' | 'async';
  idempotencyKey: string;
  tries: Try[];
  /**
   * The job each accepted try answered with (one, unless a retry made a second job), including a
   * job a sync request's failure names (`job_id`).
   */
  jobIds: Set<string>;
  /** The last try's status (0: never answered). */
  status: number;
  code?: string;
  /** From the first try to the last answer. */
  ms: number;
}

/** Statuses a client retries with the same `Idempotency-Key`: no answer, overload, unavailable. */
const RETRYABLE = new Set([0, 429, 502, 503, 504]);
/** The same key is still being processed by an earlier try: retry shortly, the API says. */
const RETRYABLE_CODES = new Set(['IDEMPOTENCY_KEY_IN_USE']);
const RETRY_PAUSE_MS = 200;

/**
 * Clients that send mixed traffic (sync `/predict`, async `/jobs` with a webhook) until stopped,
 * each request with an `Idempotency-Key` it keeps across retries, and that remember every try.
 */
export class Traffic {
  readonly requests: SentRequest[] = [];
  private running = true;
  private readonly clients: Promise<void>[];

  constructor(private readonly options: TrafficOptions) {
    this.clients = Array.from({ length: options.concurrency }, (_, i) => this.client(i));
  }

  /** Requests with an answer that accepted a job, sync or async. */
  accepted(): SentRequest[] {
    return this.requests.filter((r) => r.jobIds.size > 0);
  }

  /** Resolves once `n` more requests than now have ended 200 or 202, or rejects after `timeoutMs`. */
  async waitForSuccesses(n: number, timeoutMs = 60_000): Promise<void> {
    const target = this.successes() + n;
    const until = Date.now() + timeoutMs;
    while (this.successes() < target) {
      if (Date.now() > until) {
        throw new Error(`traffic: fewer than ${n} successes within ${timeoutMs} ms`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Stops sending; resolves when every request in flight has ended. */
  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.clients);
  }

  private successes(): number {
    return this.requests.filter((r) => r.status === 200 || r.status === 202).length;
  }

  private async client(index: number): Promise<void> {
    // Spread the async share evenly over the clients' turns.
    for (let turn = 0; this.running; turn++) {
      const kind =
        ((turn * this.options.concurrency + index) % 100) / 100 < this.options.asyncShare;
      await this.send(kind ? 'async' : 'sync');
      if (this.options.pauseMs) await new Promise((r) => setTimeout(r, this.options.pauseMs));
    }
  }

  private async send(kind: SentRequest['kind']): Promise<void> {
    const request: SentRequest = {
      kind,
      idempotencyKey: randomUUID(),
      tries: [],
      jobIds: new Set(),
      status: 0,
      ms: 0,
    };
    this.requests.push(request);
    const started = Date.now();
    do {
      const attempt = await this.try(request);
      request.tries.push(attempt);
      request.status = attempt.status;
      request.code = attempt.code;
      if (request.jobIds.size > 0) break;
      if (!RETRYABLE.has(attempt.status) && !RETRYABLE_CODES.has(attempt.code ?? '')) break;
      await new Promise((r) => setTimeout(r, RETRY_PAUSE_MS));
    } while (Date.now() - started < this.options.patienceMs);
    request.ms = Date.now() - started;
  }

  private async try(request: SentRequest): Promise<Try> {
    const { baseUrl, model, image, webhookUrl } = this.options;
    const at = Date.now();
    const url =
      request.kind === 'sync' ? `${baseUrl}/predict/${model}` : `${baseUrl}/jobs?model=${model}`;
    const fields: Record<string, string> = request.kind === 'async' ? { webhook: webhookUrl } : {};
    try {
      const response = await fetch(url, {
        method: 'POST',
        headers: {
          ...this.options.headers,
          'idempotency-key': request.idempotencyKey,
          ...(request.kind === 'sync' ? { prefer: 'wait=20' } : {}),
        },
        body: imageForm(image, fields),
        signal: AbortSignal.timeout(this.options.tryTimeoutMs ?? 30_000),
      });
      const body = (await response.json().catch(() => ({}))) as {
        id?: string;
        code?: string;
        job_id?: string;
      };
      // A sync request whose job ran and failed names it (`job_id`): the job was accepted, and its
      // failure is the answer (a retry with the same key would replay it).
      const job =
        (response.status === 200 || response.status === 202) && body.id ? body.id : body.job_id;
      if (job) request.jobIds.add(job);
      return {
        at,
        ms: Date.now() - at,
        status: response.status,
        ...(body.code ? { code: body.code } : {}),
        ...(job ? { job } : {}),
      };
    } catch {
      return { at, ms: Date.now() - at, status: 0 };
    }
  }
}
