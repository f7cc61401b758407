/**
 * How a call to one remote server (replica) went wrong. These are the faults a circuit breaker
 * counts: the server could not be reached, did not answer in time, or answered that it cannot work
 * now (5xx, 429). An answer that rejects the request itself (4xx) is not the server's fault and is
 * handed to the client as a response.
 */
export abstract class ReplicaFault extends Error {
  constructor(
    readonly replica: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }

  /** Whether the same request may go to another replica at once. */
  abstract readonly failover: boolean;
}

/** No connection, or it broke before the answer was complete. */
export class ReplicaUnreachableError extends ReplicaFault {
  override name = 'ReplicaUnreachableError';
  readonly failover = true;
}

/** The answer did not arrive within the time left. Its budget is spent: no failover. */
export class ReplicaTimeoutError extends ReplicaFault {
  override name = 'ReplicaTimeoutError';
  readonly failover = false;

  constructor(
    replica: string,
    readonly timeoutMs: number,
  ) {
    super(replica, `${replica} did not answer within ${timeoutMs} ms`);
  }
}

/** The server answered 5xx or 429: it cannot work now. */
export class ReplicaStatusError extends ReplicaFault {
  override name = 'ReplicaStatusError';
  /** Overloaded, starting or behind a proxy that lost it: another replica may do. */
  readonly failover: boolean;

  constructor(
    replica: string,
    readonly status: number,
    readonly detail: string,
  ) {
    super(replica, `${replica} answered ${status}: ${detail}`);
    this.failover = [429, 502, 503, 504].includes(status);
  }
}

/**
 * The server answered 2xx with a body that is not a JSON object, which neither TF Serving nor an
 * Open Inference Protocol server ever sends: something broken stands in its place (a proxy's page,
 * a crashed process). Another replica may do.
 */
export class ReplicaBadAnswerError extends ReplicaFault {
  override name = 'ReplicaBadAnswerError';
  readonly failover = true;

  constructor(replica: string) {
    super(replica, `${replica} answered with a body that is not JSON`);
  }
}

/**
 * Whether a body may be a JSON object, judged by its first character: both protocols answer an
 * object, and the protocol's reader parses it in full afterwards (once, not twice per answer).
 */
export function looksLikeJsonObject(body: string): boolean {
  return /^\s*\{/.test(body);
}

/** The server's own words from an error body (`{"error": "..."}` in TF Serving and KServe v2). */
export function errorDetail(body: string): string {
  try {
    const parsed = JSON.parse(body) as { error?: unknown };
    if (typeof parsed.error === 'string') return parsed.error;
  } catch {
    // not JSON: the text itself, shortened
  }
  const text = body.trim();
  return text.length > 300 ? `${text.slice(0, 300)}…` : text || '(empty body)';
}
