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
        '*.secretAccessKey',
        '*.password',
        '*.apiKey',
        '*.apiKeys',
      ],
      censor: '[redacted]',
    },
  };
  return destination ? pino(options, destination) : pino(options);
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
