import { Writable } from 'node:stream';
import Fastify from 'fastify';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../shared/logging/logger.js';

const SECRET = 'sk-live-do-not-log-me-0123456789';

/** A logger as the services build it, writing its JSON lines into memory. */
function capture(service: 'api' | 'worker' = 'api') {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      done();
    },
  });
  return { logger: createLogger(service, 'trace', sink), lines };
}

describe('log redaction', () => {
  it('redacts credentials wherever request headers are logged', () => {
    const { logger, lines } = capture();
    const headers = {
      authorization: `Bearer ${SECRET}`,
      'x-api-key': SECRET,
      cookie: `session=${SECRET}`,
      'user-agent': 'curl/8',
    };
    logger.info({ req: { method: 'GET', url: '/admin/queues', headers } }, 'with req');
    logger.info({ headers }, 'bare headers');
    logger.info({ webhook: { apiKey: SECRET }, s3: { secretAccessKey: SECRET } }, 'config');

    expect(lines.join('\n')).not.toContain(SECRET);
    type Line = { req: { headers: Record<string, string> }; headers: Record<string, string> };
    const [withReq, bare] = lines.map((l) => JSON.parse(l) as Line);
    expect(withReq?.req.headers).toEqual({
      authorization: '[redacted]',
      'x-api-key': '[redacted]',
      cookie: '[redacted]',
      'user-agent': 'curl/8',
    });
    expect(bare?.headers.authorization).toBe('[redacted]');
    expect(bare?.headers['x-api-key']).toBe('[redacted]');
  });

  it('keeps credentials out of the request log of a Fastify app, even one that logs its headers', async () => {
    const { logger, lines } = capture();
    const app = Fastify({ loggerInstance: logger });
    app.get('/careless', async (request) => {
      request.log.warn({ req: { headers: request.headers } }, 'logging what came in');
      return { ok: true };
    });
    await app.inject({
      url: '/careless',
      headers: {
        authorization: `Basic ${Buffer.from(`u:${SECRET}`).toString('base64')}`,
        'x-api-key': SECRET,
      },
    });
    await app.close();
    expect(lines.some((l) => l.includes('logging what came in'))).toBe(true);
    expect(lines.some((l) => l.includes('request completed'))).toBe(true);
    const all = lines.join('\n');
    expect(all).not.toContain(SECRET);
    expect(all).not.toContain(Buffer.from(`u:${SECRET}`).toString('base64'));
  });

  it('redacts credentials a client put in the query string from the request log', async () => {
    const { logger, lines } = capture();
    const app = Fastify({ loggerInstance: logger });
    app.get('/jobs', async () => ({ jobs: [] }));
    await app.inject({ url: `/jobs?limit=2&api_key=${SECRET}&Token=${SECRET}&cursor=abc` });
    await app.close();
    const incoming = lines.map((l) => JSON.parse(l)).find((l) => l.msg === 'incoming request');
    expect(incoming?.req.url).toBe('/jobs?limit=2&api_key=[redacted]&Token=[redacted]&cursor=abc');
    expect(lines.join('\n')).not.toContain(SECRET);
  });
});
