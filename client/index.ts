/**
 * A small TypeScript client for ai-gateway, on the platform's fetch (Node 18+, browsers, Deno).
 *
 *   const gateway = new AiGatewayClient({ baseUrl: 'http://localhost:8000', apiKey: process.env.AI_GATEWAY_KEY });
 *   const job = await gateway.predict('text_orientation', image);           // waits for the answer
 *   const queued = await gateway.submit('text_orientation', image, { webhook: 'https://…' });
 *   const done = await gateway.wait(queued.id);          // follows its event stream, or polls
 */
import { createParser, type EventSourceMessage } from 'eventsource-parser';
import { Webhook } from 'standardwebhooks';
import type { JobEventName as StreamEventName } from '../api/jobs/job-event-stream.js';
import type { HealthReport } from '../api/routes/health.js';
import type { ModelDescription, ModelList } from '../api/routes/models.js';
import type { Prediction } from '../shared/jobs/inference-result.js';
import type { JobResource } from '../shared/jobs/job-resource.js';
import { isWebhookEvent, type WebhookEvent } from '../shared/webhooks/webhook-subscription.js';

/** A job as the API describes it; `result` by task (classification, detection, ...). */
export type Job = Omit<JobResource, 'result'> & { result: Prediction | null };
export type { HealthReport, ModelDescription, ModelList, Prediction, WebhookEvent };
export { isWebhookEvent };
export type JobStatus = Job['status'];
export type ImageInput = Blob | Uint8Array | ArrayBuffer;

export interface ClientOptions {
  baseUrl: string;
  /** The API key or a JWT, sent as `Authorization: Bearer <credential>`; absent for an API that runs open. */
  apiKey?: string;
  /** Headers sent with every request. */
  headers?: Record<string, string>;
  /** @defaultValue globalThis.fetch */
  fetch?: typeof fetch;
  /**
   * Timeout of one HTTP request, except a `predict` that waits on the server.
   * @defaultValue 30000
   */
  requestTimeoutMs?: number;
}

export interface InferenceOptions {
  version?: string;
  topK?: number;
  threshold?: number;
  /** The file name sent with the image. @defaultValue "image" */
  filename?: string;
  /** Same key, same request: the same job, never a second one (within the job retention). */
  idempotencyKey?: string;
  /** The job must have started by then, or it fails DEADLINE_EXCEEDED unrun. A number is seconds from now. */
  deadline?: Date | number;
  webhook?: string;
  /** @defaultValue ['completed'] */
  webhookEvents?: WebhookEvent[];
  signal?: AbortSignal;
}

export interface PredictOptions extends InferenceOptions {
  /** Seconds the server holds the request (`Prefer: wait=N`); its default when absent. */
  waitSeconds?: number;
  /** When the server's wait runs out (202), keep polling until the job finishes. @defaultValue true */
  poll?: boolean;
}

export interface SubmitOptions extends InferenceOptions {
  /** 1 (first) to 10 (last). @defaultValue 5 */
  priority?: number;
}

export interface ListOptions {
  /** Jobs per page, 1 to 100. @defaultValue 20 */
  limit?: number;
  /** The `next` cursor of the page before. */
  cursor?: string;
  signal?: AbortSignal;
}

/** One page of your jobs, newest first. */
export interface JobPage {
  jobs: Job[];
  /** The cursor of the next page; undefined on the last. */
  next?: string;
}

export interface WaitOptions {
  /** @defaultValue 60000 */
  timeoutMs?: number;
  /**
   * Follow the job's event stream (GET /jobs/{id}/events) rather than poll; polling takes over when
   * the server offers no stream or the stream breaks. @defaultValue true
   */
  events?: boolean;
  /** First pause between polls; grows by half each poll. @defaultValue 100 */
  initialDelayMs?: number;
  /** @defaultValue 2000 */
  maxDelayMs?: number;
  signal?: AbortSignal;
}

/** What GET /jobs/{id}/events names its events (but `reconnect`, which {@link AiGatewayClient.events} handles). */
export type JobEventName = Exclude<StreamEventName, 'reconnect'>;

/** One event of a job's event stream: what happened, the state's id, the job as it is now. */
export interface JobEvent {
  event: JobEventName;
  /** Give it back as `lastEventId` to resume after it. */
  id: string;
  job: Job;
}

export interface JobEventsOptions {
  /** Resume after this event (its `id`): the current state is sent unless it is that one. */
  lastEventId?: string;
  signal?: AbortSignal;
}

/** Your webhook signing secret (GET /webhooks/secret): verify your webhooks with `secret`. */
export interface WebhookSecret {
  /** Your API key id (`anonymous` while the API runs open). */
  tenant: string;
  secret: string;
  /** While a rotation is under way, the secret before it (messages carry both signatures). */
  previous: string | null;
  /** `keys_file`: set for your key by the operator; `derived`: from the master secret and your id. */
  source: 'keys_file' | 'derived';
}

/** An RFC 9457 problem the API answered with. */
export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: string;
  request_id: string;
  job_id?: string;
  [extension: string]: unknown;
}

export class ApiError extends Error {
  override name = 'ApiError';
  readonly status: number;
  readonly code: string;
  /** Seconds the server asked to wait before retrying (Retry-After), when it did. */
  readonly retryAfter: number | undefined;

  constructor(
    readonly problem: Problem,
    retryAfter?: number,
  ) {
    super(`${problem.code}: ${problem.detail}`);
    this.status = problem.status;
    this.code = problem.code;
    this.retryAfter = retryAfter;
  }
}

/**
 * The request got no answer: the connection was refused, the host was not found, or the socket
 * closed before a response (a Fetch network error). Aborts and timeouts are not this: they keep
 * their own `AbortError` / `TimeoutError`.
 */
export class ConnectionError extends Error {
  override name = 'ConnectionError';
  /** The system's code (`ECONNREFUSED`, `ENOTFOUND`, `ECONNRESET`, ...), when it gave one. */
  readonly code: string | undefined;

  constructor(
    /** The base URL the client was given. */
    readonly url: string,
    cause: unknown,
  ) {
    const code = systemCode(cause);
    const why =
      code ?? (cause instanceof Error && cause.cause instanceof Error && cause.cause.message);
    super(`cannot reach ${url}${why ? ` (${why})` : ''}`, { cause });
    this.code = code;
  }
}

const FINAL: ReadonlySet<JobStatus> = new Set(['succeeded', 'failed', 'canceled']);
/** Answers given before any job exists, that a later try can get past. */
const TRANSIENT = new Set([
  'RATE_LIMITED',
  'QUEUE_FULL',
  'QUEUE_UNAVAILABLE',
  'SHUTTING_DOWN',
  'OVERLOADED',
]);

/**
 * Whether the API turned a request away for now (429, or 503 while full, overloaded, draining or
 * without Redis) before creating anything: the same request, sent again after `retryAfter`
 * seconds, can succeed and cannot create a second job.
 */
export function isTransient(error: unknown): error is ApiError {
  return error instanceof ApiError && TRANSIENT.has(error.code);
}

export class AiGatewayClient {
  private readonly baseUrl: string;
  private readonly fetch: typeof fetch;
  private readonly requestTimeoutMs: number;

  constructor(private readonly options: ClientOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, '');
    this.fetch = options.fetch ?? globalThis.fetch.bind(globalThis);
    this.requestTimeoutMs = options.requestTimeoutMs ?? 30_000;
  }

  /**
   * POST /predict/{model}: the finished job. A job that fails or is canceled throws its problem
   * (with `job_id`); when the server's wait runs out the job is polled to the end (unless `poll`
   * is false, then the unfinished job is returned).
   */
  async predict(model: string, image: ImageInput, options: PredictOptions = {}): Promise<Job> {
    const headers: Record<string, string> = {};
    if (options.waitSeconds !== undefined) headers.prefer = `wait=${options.waitSeconds}`;
    const serverWaitMs = (options.waitSeconds ?? 120) * 1000;
    const job = await this.send<Job>(
      'POST',
      `/predict/${encodeURIComponent(model)}`,
      {
        body: form(image, fields(options), options.filename),
        headers: { ...headers, ...idempotency(options) },
      },
      options.signal,
      serverWaitMs + this.requestTimeoutMs,
    );
    if (FINAL.has(job.status) || options.poll === false) return job;
    const done = await this.wait(job.id, options.signal ? { signal: options.signal } : {});
    if (done.status !== 'succeeded') throw jobProblem(done);
    return done;
  }

  /** POST /jobs: the queued job (202). */
  submit(model: string, image: ImageInput, options: SubmitOptions = {}): Promise<Job> {
    const body = form(
      image,
      { model, ...fields(options), priority: options.priority },
      options.filename,
    );
    return this.send<Job>('POST', '/jobs', { body, headers: idempotency(options) }, options.signal);
  }

  /** GET /jobs/{id}. */
  get(id: string, signal?: AbortSignal): Promise<Job> {
    return this.send<Job>('GET', `/jobs/${encodeURIComponent(id)}`, {}, signal);
  }

  /** GET /jobs: one page of this key's jobs, newest first. */
  async list(options: ListOptions = {}): Promise<JobPage> {
    const query = new URLSearchParams({ limit: String(options.limit ?? 20) });
    if (options.cursor) query.set('cursor', options.cursor);
    const page = await this.send<{ jobs: Job[]; next: string | null }>(
      'GET',
      `/jobs?${query}`,
      {},
      options.signal,
    );
    const next = page.next ? new URL(page.next, 'http://x').searchParams.get('cursor') : null;
    return { jobs: page.jobs, next: next ?? undefined };
  }

  /** Every job of this key still kept, newest first, a page at a time. */
  async *jobs(options: Omit<ListOptions, 'cursor'> = {}): AsyncGenerator<Job> {
    let cursor: string | undefined;
    do {
      const page = await this.list({ ...options, cursor });
      yield* page.jobs;
      cursor = page.next;
    } while (cursor);
  }

  /** DELETE /jobs/{id}: the canceled job; a finished one throws JOB_FINISHED (409). */
  cancel(id: string, signal?: AbortSignal): Promise<Job> {
    return this.send<Job>('DELETE', `/jobs/${encodeURIComponent(id)}`, {}, signal);
  }

  /** GET /models: every registered model and whether it can be served now, by backend. */
  models(signal?: AbortSignal): Promise<ModelList> {
    return this.send<ModelList>('GET', '/models', {}, signal);
  }

  /** GET /models/{name}. */
  model(name: string, signal?: AbortSignal): Promise<ModelDescription> {
    return this.send<ModelDescription>('GET', `/models/${encodeURIComponent(name)}`, {}, signal);
  }

  /** GET /health. An unhealthy service answers 503 with the same report: returned, not thrown. */
  health(signal?: AbortSignal): Promise<HealthReport> {
    return this.send<HealthReport>('GET', '/health', { reportStatus: 503 }, signal);
  }

  /** GET /webhooks/secret: the secret your key's webhooks are signed with; for {@link verifyWebhook}. */
  webhookSecret(signal?: AbortSignal): Promise<WebhookSecret> {
    return this.send<WebhookSecret>('GET', '/webhooks/secret', {}, signal);
  }

  /**
   * GET /jobs/{id}/events: the job's events as they happen (Server-Sent Events), its current state
   * first, until it has ended. A stream the server ends early (`reconnect`: its time is up, or it is
   * shutting down) is resumed with `Last-Event-ID`. Throws the API's problem (404 JOB_NOT_FOUND, ...),
   * and an error when the stream breaks or stays silent (no event nor heartbeat) for
   * `requestTimeoutMs`: resume with the last event's `id`, or poll.
   */
  async *events(id: string, options: JobEventsOptions = {}): AsyncGenerator<JobEvent> {
    let lastEventId = options.lastEventId;
    for (;;) {
      let reconnectMs: number | undefined;
      for await (const message of this.stream(
        `/jobs/${encodeURIComponent(id)}/events`,
        lastEventId ? { 'last-event-id': lastEventId } : {},
        options.signal,
      )) {
        if (message.event === 'reconnect') {
          reconnectMs = (JSON.parse(message.data) as { retry_ms?: number }).retry_ms ?? 1000;
          break;
        }
        const event = {
          event: message.event as JobEventName,
          id: message.id ?? '',
          job: JSON.parse(message.data) as Job,
        };
        lastEventId = event.id;
        yield event;
        if (FINAL.has(event.job.status)) return;
      }
      // 204: the job had ended with the event named by lastEventId.
      if (reconnectMs === undefined) return;
      await sleep(reconnectMs, options.signal);
    }
  }

  /**
   * Waits until the job is succeeded, failed or canceled: follows its event stream when the server
   * has one, else (or once the stream breaks) polls GET /jobs/{id}, pausing a little longer each
   * time (with jitter, so many waiters spread out) and waiting out rate limits and brief outages.
   * Throws when `timeoutMs` passes first.
   */
  async wait(id: string, options: WaitOptions = {}): Promise<Job> {
    const timeoutMs = options.timeoutMs ?? 60_000;
    const maxDelayMs = options.maxDelayMs ?? 2_000;
    const until = Date.now() + timeoutMs;
    if (options.events !== false) {
      const followed = await this.follow(id, until, timeoutMs, options.signal);
      if (followed) return followed;
    }
    let delay = options.initialDelayMs ?? 100;
    for (;;) {
      let pause = delay;
      try {
        const job = await this.get(id, options.signal);
        if (FINAL.has(job.status)) return job;
      } catch (err) {
        if (!isTransient(err)) throw err;
        pause = Math.max(pause, (err.retryAfter ?? 1) * 1000);
      }
      if (Date.now() + pause > until) {
        throw new Error(`job ${id} did not finish within ${timeoutMs} ms`);
      }
      await sleep(pause * (0.8 + Math.random() * 0.4), options.signal);
      delay = Math.min(delay * 1.5, maxDelayMs);
    }
  }

  /**
   * The job's final state from its event stream, or undefined when the stream could not be used
   * (no such route on an older server, a broken connection, a transient refusal): the caller polls.
   */
  private async follow(
    id: string,
    until: number,
    timeoutMs: number,
    signal?: AbortSignal,
  ): Promise<Job | undefined> {
    const timeout = AbortSignal.timeout(Math.max(1, until - Date.now()));
    try {
      for await (const { job } of this.events(id, {
        signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
      })) {
        if (FINAL.has(job.status)) return job;
      }
    } catch (err) {
      if (signal?.aborted) throw err;
      if (timeout.aborted) throw new Error(`job ${id} did not finish within ${timeoutMs} ms`);
      // Anything else (no stream here, a refusal, a broken connection): polling takes over, and
      // says so itself if the job cannot be read either.
    }
    return undefined;
  }

  /** The SSE messages of one GET, until the server ends it; a silent connection is given up. */
  private async *stream(
    path: string,
    headers: Record<string, string>,
    signal?: AbortSignal,
  ): AsyncGenerator<EventSourceMessage> {
    const silent = new AbortController();
    let idle: ReturnType<typeof setTimeout> | undefined;
    const watchdog = () => {
      clearTimeout(idle);
      idle = setTimeout(
        () => silent.abort(new Error(`event stream silent for ${this.requestTimeoutMs} ms`)),
        this.requestTimeoutMs,
      );
    };
    watchdog();
    try {
      const response = await this.request('GET', path, {
        headers: { accept: 'text/event-stream', ...headers },
        signal: signal ? AbortSignal.any([signal, silent.signal]) : silent.signal,
      });
      if (response.status === 204) return;
      if (!response.ok) throw await problemOf(response);
      if (
        !response.headers.get('content-type')?.startsWith('text/event-stream') ||
        !response.body
      ) {
        throw new Error(`${path} answered no event stream`);
      }
      const messages: EventSourceMessage[] = [];
      const parser = createParser({ onEvent: (message) => messages.push(message) });
      const decoder = new TextDecoder();
      const reader = response.body.getReader();
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) return;
          watchdog();
          parser.feed(decoder.decode(value, { stream: true }));
          while (messages.length > 0) yield messages.shift()!;
        }
      } finally {
        // An early return (the job ended, or the caller stopped) closes the connection.
        await reader.cancel().catch(() => undefined);
      }
    } finally {
      clearTimeout(idle);
    }
  }

  private async send<T>(
    method: string,
    path: string,
    init: {
      body?: FormData;
      headers?: Record<string, string>;
      /** An error status whose body, when it is not a problem, is the answer (GET /health's 503). */
      reportStatus?: number;
    },
    signal?: AbortSignal,
    timeoutMs = this.requestTimeoutMs,
  ): Promise<T> {
    const timeout = AbortSignal.timeout(timeoutMs);
    const response = await this.request(method, path, {
      headers: { accept: 'application/json', ...init.headers },
      body: init.body,
      signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
    });
    const text = await response.text();
    const body = text ? (JSON.parse(text) as unknown) : undefined;
    if (response.ok || (response.status === init.reportStatus && !isProblem(body))) {
      return body as T;
    }
    throw apiError(response, text, body);
  }

  /** One fetch with this client's credentials and headers; a network failure is a ConnectionError. */
  private request(
    method: string,
    path: string,
    init: { headers: Record<string, string>; body?: FormData; signal: AbortSignal },
  ): Promise<Response> {
    return this.fetch(`${this.baseUrl}${path}`, {
      method,
      headers: {
        ...(this.options.apiKey ? { authorization: `Bearer ${this.options.apiKey}` } : {}),
        ...this.options.headers,
        ...init.headers,
      },
      body: init.body,
      signal: init.signal,
    }).catch((err: unknown) => {
      // The Fetch standard rejects with a TypeError on a network error, and with the signal's
      // reason on an abort or timeout.
      throw err instanceof TypeError ? new ConnectionError(this.baseUrl, err) : err;
    });
  }
}

/** An error answer as an ApiError: its problem, or one made from its status. */
async function problemOf(response: Response): Promise<ApiError> {
  const text = await response.text();
  return apiError(response, text, parseJson(text));
}

function apiError(response: Response, text: string, body: unknown): ApiError {
  const retryAfter = Number(response.headers.get('retry-after'));
  return new ApiError(
    isProblem(body)
      ? body
      : {
          type: 'about:blank',
          title: response.statusText,
          status: response.status,
          detail: text.slice(0, 200),
          code: `HTTP_${response.status}`,
          request_id: response.headers.get('x-request-id') ?? '',
        },
    Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter : undefined,
  );
}

function parseJson(text: string): unknown {
  if (!text) return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

/**
 * Verifies a webhook from ai-gateway (Standard Webhooks: `webhook-id`, `webhook-timestamp`,
 * `webhook-signature`) against your own `whsec_…` secret ({@link AiGatewayClient.webhookSecret})
 * and returns the job it carries. Give it the raw body, exactly as received. Throws when no
 * signature matches or the timestamp is more than five minutes away from now (a replay). Several
 * secrets (while you switch to a new one) verify a message that any of them signed. De-duplicate
 * on `webhook-id`: retries reuse it.
 */
export function verifyWebhook(
  secrets: string | readonly string[],
  body: string | Uint8Array,
  headers: Headers | Record<string, string | string[] | undefined>,
): Job {
  const flat: Record<string, string> = {};
  const entries =
    headers instanceof Headers ? [...headers.entries()] : Object.entries(headers ?? {});
  for (const [name, value] of entries) {
    if (value !== undefined)
      flat[name.toLowerCase()] = Array.isArray(value) ? value.join(',') : value;
  }
  const payload = typeof body === 'string' ? body : new TextDecoder().decode(body);
  let failure: unknown = new Error('no secret given to verify the webhook with');
  for (const secret of typeof secrets === 'string' ? [secrets] : secrets) {
    try {
      return new Webhook(secret).verify(payload, flat) as Job;
    } catch (err) {
      failure = err;
    }
  }
  throw failure;
}

function fields(options: InferenceOptions): FormFields {
  return {
    // An empty version or webhook is none (the API would refuse it as a value).
    version: options.version || undefined,
    top_k: options.topK,
    threshold: options.threshold,
    deadline: options.deadline instanceof Date ? options.deadline.toISOString() : options.deadline,
    webhook: options.webhook || undefined,
    webhook_events: options.webhookEvents?.join(','),
  };
}

function idempotency(options: InferenceOptions): Record<string, string> {
  return options.idempotencyKey ? { 'idempotency-key': options.idempotencyKey } : {};
}

/** A form's fields; one that is undefined is not sent. */
type FormFields = Record<string, string | number | undefined>;

function form(image: ImageInput, values: FormFields, filename = 'image'): FormData {
  const data = new FormData();
  // Fields first: the server can check them before the image streams in.
  for (const [name, value] of Object.entries(values)) {
    if (value !== undefined) data.set(name, String(value));
  }
  const blob = image instanceof Blob ? image : new Blob([image as ArrayBuffer]);
  data.set('file', blob, filename);
  return data;
}

function isProblem(body: unknown): body is Problem {
  return typeof body === 'object' && body !== null && 'code' in body && 'status' in body;
}

/** A job that ended without a result, as the problem a sync answer would have carried. */
function jobProblem(job: Job): ApiError {
  return new ApiError({
    type: 'about:blank',
    title: job.status,
    status: job.status === 'canceled' ? 409 : 500,
    detail: job.error?.message ?? job.status,
    code: job.error?.code ?? 'INFERENCE_FAILED',
    request_id: job.request_id,
    job_id: job.id,
  });
}

/** undici puts the socket's error in `cause`; a failed happy-eyeballs connect, an AggregateError. */
function systemCode(error: unknown): string | undefined {
  const cause = error instanceof Error ? error.cause : undefined;
  for (const candidate of [cause, cause instanceof AggregateError ? cause.errors[0] : undefined]) {
    const code = (candidate as { code?: unknown } | undefined)?.code;
    if (typeof code === 'string') return code;
  }
  return undefined;
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
