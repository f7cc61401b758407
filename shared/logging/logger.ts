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
