import { performance } from 'node:perf_hooks';
import { Agent, request } from 'undici';
import { type JobError, jobError } from '../../shared/errors/index.js';
import type { TargetPolicy } from '../../shared/webhooks/target-policy.js';
import { ADDRESS_REFUSED, guardedLookup } from './guarded-lookup.js';

/** How one delivery attempt went, and what to do next. */
export interface AttemptResult {
  /** `retry`: timeout, network error, 408, 429 or 5xx; `stop`: 410, other 3xx/4xx, a refused target. */
  verdict: 'delivered' | 'retry' | 'stop';
  statusCode: number | null;
  /** What the tenant reads in the job's `webhook_deliveries`: a catalogue code and its words. */
  error: JobError | null;
  /**
   * What went wrong in the operator's words, for the log only: the addresses a name resolved to,
   * the network error's message.
   */
  detail?: string;
  /** Why there was no answer: the receiver timed out, the network failed, or we refused the target. */
  failure?: 'timeout' | 'network' | 'refused';
  durationMs: number;
  /** The receiver's Retry-After, in ms (uncapped). */
  retryAfterMs?: number;
}

export interface WebhookSenderOptions {
  policy: TargetPolicy;
  /** Whole-attempt timeout: connect, send, answer headers and body. */
  timeoutMs: number;
  /**
   * Most of an answer body read (and discarded) so the connection can be reused.
   * @defaultValue 65536
   */
  maxResponseBytes?: number;
}

/**
 * POSTs signed webhook bodies with undici: its own connection pool whose DNS lookup enforces the
 * target policy on the address connected to, no redirects followed (a 3xx is an answer, and not a
 * success), one timeout over the whole attempt.
 */
export class WebhookSender {
  private readonly agent: Agent;
  private readonly maxResponseBytes: number;

  constructor(private readonly options: WebhookSenderOptions) {
    if (options.timeoutMs <= 0) throw new RangeError('timeoutMs must be positive');
    this.maxResponseBytes = options.maxResponseBytes ?? 65_536;
    this.agent = new Agent({
      connect: { lookup: guardedLookup(options.policy), timeout: options.timeoutMs },
      headersTimeout: options.timeoutMs,
      bodyTimeout: options.timeoutMs,
      keepAliveTimeout: 4_000,
    });
  }

  async send(url: string, headers: Record<string, string>, body: string): Promise<AttemptResult> {
    const started = performance.now();
    const elapsed = () => Math.round((performance.now() - started) * 10) / 10;
    const verdict = this.options.policy.checkUrl(url);
    if (!verdict.allowed) {
      return {
        verdict: 'stop',
        statusCode: null,
        error: jobError('WEBHOOK_TARGET_FORBIDDEN'),
        detail: verdict.reason,
        failure: 'refused',
        durationMs: 0,
      };
    }
    try {
      const response = await request(verdict.url, {
        method: 'POST',
        headers,
        body,
        dispatcher: this.agent,
        signal: AbortSignal.timeout(this.options.timeoutMs),
      });
      await response.body.dump({ limit: this.maxResponseBytes }).catch(() => undefined);
      const status = response.statusCode;
      const result = { statusCode: status, durationMs: elapsed() };
      if (status >= 200 && status < 300) return { ...result, verdict: 'delivered', error: null };
      const retryable = status === 408 || status === 429 || status >= 500;
      const retryAfterMs = retryable ? parseRetryAfter(response.headers['retry-after']) : undefined;
      return {
        ...result,
        verdict: retryable ? 'retry' : 'stop',
        error: jobError('WEBHOOK_REJECTED', status),
        retryAfterMs,
      };
    } catch (err) {
      return {
        ...describeFailure(err, this.options.timeoutMs),
        statusCode: null,
        durationMs: elapsed(),
      };
    }
  }

  async close(): Promise<void> {
    await this.agent.close();
  }
}

/**
 * Why an attempt got no answer. The network's messages name the addresses connected to (and a
 * refused name's resolved addresses), so they are the detail; the error says only what kind of
 * failure it was, with the system's error code (ECONNREFUSED, ENOTFOUND).
 */
function describeFailure(
  err: unknown,
  timeoutMs: number,
): Pick<AttemptResult, 'verdict' | 'error' | 'detail' | 'failure'> {
  const error = err as { name?: string; code?: string; message?: string; cause?: unknown };
  const cause = error.cause as { code?: string; message?: string } | undefined;
  const detail = cause?.message ?? error.message ?? String(err);
  if (error.code === ADDRESS_REFUSED || cause?.code === ADDRESS_REFUSED) {
    return {
      verdict: 'stop',
      error: jobError('WEBHOOK_TARGET_FORBIDDEN'),
      detail,
      failure: 'refused',
    };
  }
  if (
    error.name === 'TimeoutError' ||
    error.name === 'AbortError' ||
    /TIMEOUT/.test(error.code ?? '') ||
    /TIMEOUT/.test(cause?.code ?? '')
  ) {
    return {
      verdict: 'retry',
      error: jobError('WEBHOOK_TIMEOUT', timeoutMs),
      detail,
      failure: 'timeout',
    };
  }
  const code = cause?.code ?? error.code;
  return {
    verdict: 'retry',
    error: jobError('WEBHOOK_UNREACHABLE', systemCode(code)),
    detail,
    failure: 'network',
  };
}

/** An errno-style code (ECONNREFUSED, UND_ERR_SOCKET) as is; anything else is not echoed. */
function systemCode(code: string | undefined): string {
  return code && /^[A-Z][A-Z0-9_]{1,40}$/.test(code) ? code : 'network error';
}

/** `Retry-After` as delay-seconds or an HTTP date, in ms from now; undefined when absent or bad. */
export function parseRetryAfter(
  value: string | string[] | undefined,
  now = Date.now(),
): number | undefined {
  const text = (Array.isArray(value) ? value[0] : value)?.trim();
  if (!text) return undefined;
  if (/^\d{1,10}$/.test(text)) return Number(text) * 1000;
  const at = Date.parse(text);
  return Number.isFinite(at) ? Math.max(0, at - now) : undefined;
}
