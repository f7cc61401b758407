import { type DestinationStream, type Logger, pino } from 'pino';

export type { Logger } from 'pino';

/**
 * Structured JSON logs. `service` tells API and worker lines apart when both write to one stream;
 * credentials never reach a log line.
 */
export function createLogger(
  service: 'api' | 'worker' | 'start',
  level: string,
  destination?: DestinationStream,
): Logger {
  const options = {
    level,
    serializers: { req: serializeRequest },
    base: { service, pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: {
      paths: [
        'req.headers.authorization',
        'req.headers["x-api-key"]',
        'req.headers.cookie',
        'headers.authorization',
        'headers["x-api-key"]',
        'headers.cookie',
      ],
      censor: REDACTED,
    },
    // pino's wildcard paths (`*.password`) cost 10-25 us and ~25 KB of garbage per line, on every
    // line (the access log's included): the same rule, one level down, checked by hand.
    formatters: { log: redactSecretFields, bindings: redactSecretFields },
  };
  return destination ? pino(options, destination) : pino(options);
}

const REDACTED = '[redacted]';

/** Fields redacted in any object logged under a top-level key (`{ s3: { secretAccessKey } }`). */
const SECRET_FIELDS = ['secretAccessKey', 'password', 'apiKey', 'apiKeys'] as const;

/**
 * The log object, with the values of {@link SECRET_FIELDS} in its top-level objects replaced (in
 * copies: the caller's objects are left alone). Returns the object itself when nothing is secret,
 * which is every line of the hot path: no copy, no garbage.
 */
export function redactSecretFields(object: Record<string, unknown>): Record<string, unknown> {
  let redacted = object;
  for (const key in object) {
    const value = object[key];
    if (value === null || typeof value !== 'object') continue;
    let copy: Record<string, unknown> | undefined;
    for (const field of SECRET_FIELDS) {
      if (Object.hasOwn(value, field)) {
        copy ??= shallowCopy(value);
        copy[field] = REDACTED;
      }
    }
    if (!copy) continue;
    if (redacted === object) redacted = { ...object };
    redacted[key] = copy;
  }
  return redacted;
}

/** Own enumerable fields and prototype (an Error stays one, with its message and stack). */
function shallowCopy(value: object): Record<string, unknown> {
  const copy = Object.assign(Object.create(Object.getPrototypeOf(value)), value);
  if (value instanceof Error) {
    copy.message = value.message;
    copy.stack = value.stack;
  }
  return copy;
}

/**
 * How much of stdout a process buffers before it writes, and how long a line may wait at most.
 * One write per request (the API's access log) costs a syscall and a thread-pool round trip each;
 * under load those writes took about 7% of the API's main thread. Lines still go out in order, within
 * {@link STDOUT_FLUSH_MS}, and the buffer is written synchronously when the process exits; only a
 * process killed outright (SIGKILL) loses what it held.
 */
export const STDOUT_BUFFER_BYTES = 4096;
export const STDOUT_FLUSH_MS = 250;

/** Stdout, buffered as {@link STDOUT_BUFFER_BYTES} says. */
export function bufferedStdout(): DestinationStream {
  return pino.destination({
    dest: 1,
    sync: false,
    minLength: STDOUT_BUFFER_BYTES,
    periodicFlush: STDOUT_FLUSH_MS,
  });
}

/** Query parameters whose values never reach a log line, should a client put a credential there. */
const SECRET_PARAMETER =
  /^(api[_-]?key|key|token|access[_-]?token|secret|password|auth(orization)?|signature)$/i;

/** The URL with the values of credential-like query parameters replaced. */
export function redactUrl(url: string): string {
  const query = url.indexOf('?');
  if (query < 0) return url;
  const parameters = url
    .slice(query + 1)
    .split('&')
    .map((pair) => {
      const name = pair.split('=', 1)[0] ?? '';
      let decoded = name;
      try {
        decoded = decodeURIComponent(name);
      } catch {}
      return SECRET_PARAMETER.test(decoded) ? `${name}=[redacted]` : pair;
    });
  return `${url.slice(0, query)}?${parameters.join('&')}`;
}

interface LoggedRequest {
  method?: string;
  url?: string;
  host?: string;
  ip?: string;
  raw?: unknown;
  socket?: { remotePort?: number };
}

/**
 * Fastify's request serializer (method, URL, host, client address), with credentials in the
 * query string redacted; other objects logged as `req` keep their fields, URL redacted.
 */
function serializeRequest(req: LoggedRequest): unknown {
  if (!req || typeof req !== 'object') return req;
  const url = typeof req.url === 'string' ? redactUrl(req.url) : req.url;
  if (!('raw' in req)) return { ...req, url };
  return {
    method: req.method,
    url,
    host: req.host,
    remoteAddress: req.ip,
    remotePort: req.socket?.remotePort,
  };
}
