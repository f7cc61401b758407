/**
 * A corpus of hostile and malformed requests against a real API process over HTTP, with API keys
 * on: each is answered with its expected status and a problem body with its stable code, without
 * internals, and the service stays healthy. Requests fetch cannot send (malformed HTTP, smuggling,
 * oversized headers, slow clients, broken multipart) go over raw sockets.
 */
import { randomUUID } from 'node:crypto';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AiGatewayClient, type Job } from '../../client/index.js';
import { pngClaiming, renderTextLine } from '../fixtures/images.js';
import { multipartBody, type Part, rawRequest } from '../support/raw-http.js';
import { sharedServices } from '../support/shared-services.js';
import { type Stack, startStack } from '../support/stack.js';

const KEYS = { acme: 'acme-hostile-key-0123456789', globex: 'globex-hostile-key-0123456789' };
const ADMIN = 'admin-hostile-key-0123456789';
const MAX_UPLOAD_BYTES = 200_000;
const MAX_IMAGE_DIMENSION = 2000;
const REQUEST_TIMEOUT_MS = 1500;

interface Request {
  method?: string;
  path?: string;
  headers?: Record<string, string>;
  body?: Buffer | string | FormData;
  /** Leave out the acme key (the case sets its own credentials, or none). */
  anonymous?: boolean;
}

type Case = [name: string, build: () => Request, status: number, code: string];

const services = sharedServices();
let stack: Stack;
let port: number;
let text: Buffer;
let jpeg: Buffer;
let theirJob: Job;
/** Requests the corpus expects to be accepted: each makes one job. */
let acceptedJobs = 0;

const auth = { authorization: `Bearer ${KEYS.acme}` };
const upload = (parts: Part[]) => {
  const { body, contentType } = multipartBody(parts);
  return { body, headers: { 'content-type': contentType } };
};
const file = (data: Buffer, extra: Part[] = [], contentType = 'image/png') =>
  upload([...extra, { name: 'file', data, contentType }]);
const field = (name: string, value: string): Part => ({ name, value });
const raw = (data: Buffer | string, contentType: string) => ({
  body: data,
  headers: { 'content-type': contentType },
});

const SVG =
  '<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><image href="http://169.254.169.254/latest/meta-data/" width="64" height="64"/></svg>';

const cases = (): Case[] => [
  // Credentials
  ['no API key', () => ({ anonymous: true, ...file(text) }), 401, 'API_KEY_REQUIRED'],
  [
    'a wrong API key',
    () => ({
      anonymous: true,
      ...withHeaders(file(text), { 'x-api-key': 'not-a-key-at-all-000000' }),
    }),
    401,
    'API_KEY_INVALID',
  ],
  [
    'the API key as Basic credentials',
    () => ({
      anonymous: true,
      headers: { authorization: `Basic ${Buffer.from(`acme:${KEYS.acme}`).toString('base64')}` },
    }),
    401,
    'API_KEY_INVALID',
  ],
  [
    'an empty Bearer token',
    () => ({ anonymous: true, headers: { authorization: 'Bearer ' } }),
    401,
    'API_KEY_INVALID',
  ],
  [
    'the API key in the query string',
    () => ({ anonymous: true, path: `/jobs?api_key=${KEYS.acme}`, method: 'GET' }),
    401,
    'API_KEY_REQUIRED',
  ],
  [
    'a 10 KB API key',
    () => ({
      anonymous: true,
      method: 'GET',
      path: '/jobs',
      headers: { 'x-api-key': 'k'.repeat(10_000) },
    }),
    401,
    'API_KEY_INVALID',
  ],
  [
    'a tenant key on an admin route',
    () => ({ method: 'DELETE', path: '/admin/rate-limits/acme' }),
    401,
    'ADMIN_UNAUTHORIZED',
  ],
  [
    'the dashboard with a wrong Basic password',
    () => ({
      anonymous: true,
      method: 'GET',
      path: '/admin/queues',
      headers: { authorization: `Basic ${Buffer.from('admin:guess').toString('base64')}` },
    }),
    401,
    'ADMIN_UNAUTHORIZED',
  ],
  [
    'a rate-limit reset for a key id that does not exist',
    () => ({
      anonymous: true,
      method: 'DELETE',
      path: '/admin/rate-limits/initech',
      headers: { authorization: `Bearer ${ADMIN}` },
    }),
    404,
    'API_KEY_NOT_FOUND',
  ],

  // Other tenants, ids and paths
  [
    "another tenant's job",
    () => ({ method: 'GET', path: `/jobs/${theirJob.id}` }),
    404,
    'JOB_NOT_FOUND',
  ],
  [
    "canceling another tenant's job",
    () => ({ method: 'DELETE', path: `/jobs/${theirJob.id}` }),
    404,
    'JOB_NOT_FOUND',
  ],
  [
    'a job id of 65 characters',
    () => ({ method: 'GET', path: `/jobs/${'a'.repeat(65)}` }),
    400,
    'VALIDATION_FAILED',
  ],
  [
    'a job id that climbs out of /jobs',
    () => ({ method: 'GET', path: '/jobs/..%2Fadmin%2Fqueues' }),
    404,
    'JOB_NOT_FOUND',
  ],
  [
    'a model name that climbs directories',
    () => ({ path: '/predict/..%2F..%2Fetc%2Fpasswd', ...file(text) }),
    404,
    'MODEL_NOT_FOUND',
  ],
  [
    'a model name with a NUL byte',
    () => ({ path: '/predict/text_orientation%00.onnx', ...file(text) }),
    404,
    'MODEL_NOT_FOUND',
  ],
  [
    'a model named __proto__',
    () => ({ path: '/predict/__proto__', ...file(text) }),
    404,
    'MODEL_NOT_FOUND',
  ],
  [
    'a model name of 200 characters',
    () => ({ path: `/predict/${'m'.repeat(200)}`, ...file(text) }),
    400,
    'VALIDATION_FAILED',
  ],
  [
    'a model field that climbs directories (POST /jobs)',
    () => ({
      path: '/jobs',
      ...file(text, [field('model', '../../models/repository/text_orientation')]),
    }),
    404,
    'MODEL_NOT_FOUND',
  ],
  [
    'a version that is a path',
    () => ({ ...file(text, [field('version', '1/../../2')]) }),
    400,
    'VALIDATION_FAILED',
  ],
  ['an unknown route', () => ({ method: 'GET', path: '/etc/passwd' }), 404, 'ROUTE_NOT_FOUND'],
  [
    'a broken percent-encoding in the path',
    () => ({ method: 'GET', path: '/jobs/%zz' }),
    400,
    'VALIDATION_FAILED',
  ],
  [
    'a method the route does not have',
    () => ({ method: 'PUT', path: '/jobs' }),
    404,
    'ROUTE_NOT_FOUND',
  ],

  // Image content
  ['a zero-byte raw body', () => raw(Buffer.alloc(0), 'image/png'), 422, 'INVALID_IMAGE'],
  ['a zero-byte file part', () => file(Buffer.alloc(0)), 422, 'INVALID_IMAGE'],
  [
    'a truncated PNG',
    () => file(text.subarray(0, Math.floor(text.length / 2))),
    422,
    'INVALID_IMAGE',
  ],
  [
    'a truncated JPEG',
    () => file(jpeg.subarray(0, jpeg.length - 300), [], 'image/jpeg'),
    422,
    'INVALID_IMAGE',
  ],
  [
    'a PNG signature followed by SVG (polyglot)',
    () => file(Buffer.concat([text.subarray(0, 8), Buffer.from(SVG)])),
    422,
    'INVALID_IMAGE',
  ],
  ['SVG declared as PNG', () => file(Buffer.from(SVG)), 415, 'UNSUPPORTED_MEDIA_TYPE'],
  ['SVG as image/svg+xml', () => raw(SVG, 'image/svg+xml'), 415, 'UNSUPPORTED_MEDIA_TYPE'],
  [
    'HTML declared as JPEG',
    () => raw('<html><script>alert(1)</script></html>', 'image/jpeg'),
    415,
    'UNSUPPORTED_MEDIA_TYPE',
  ],
  [
    'a PDF',
    () => file(Buffer.from('%PDF-1.7\n1 0 obj<<>>endobj\n%%EOF\n')),
    415,
    'UNSUPPORTED_MEDIA_TYPE',
  ],
  [
    'a ZIP archive',
    () => file(Buffer.from('504b0304140000000800', 'hex')),
    415,
    'UNSUPPORTED_MEDIA_TYPE',
  ],
  [
    'an MP4 video (ISO BMFF like AVIF)',
    () => file(Buffer.concat([Buffer.from('0000001c6674797069736f6d', 'hex'), Buffer.alloc(64)])),
    415,
    'UNSUPPORTED_MEDIA_TYPE',
  ],
  ['random bytes', () => file(Buffer.from(randomUUID().repeat(50))), 415, 'UNSUPPORTED_MEDIA_TYPE'],
  [
    'JSON where an image is expected',
    () => raw('{"image":"aGVsbG8="}', 'application/json'),
    415,
    'UNSUPPORTED_MEDIA_TYPE',
  ],
  [
    'plain text where an image is expected',
    () => raw('an image, honestly', 'text/plain'),
    415,
    'UNSUPPORTED_MEDIA_TYPE',
  ],
  [
    'a form-urlencoded body',
    () => raw('file=abc', 'application/x-www-form-urlencoded'),
    415,
    'UNSUPPORTED_MEDIA_TYPE',
  ],
  ['a decompression bomb (100000x100000 header)', () => file(pngBomb), 422, 'IMAGE_TOO_LARGE'],
  ['more pixels than the limit (20000x20000 header)', () => file(pngBig), 422, 'IMAGE_TOO_LARGE'],
  ['a side past MAX_IMAGE_DIMENSION (3000x2)', () => file(strip), 422, 'IMAGE_TOO_LARGE'],
  [
    'an upload past MAX_UPLOAD_BYTES',
    () => file(Buffer.alloc(MAX_UPLOAD_BYTES + 1, 1)),
    413,
    'PAYLOAD_TOO_LARGE',
  ],
  [
    'a raw body past MAX_UPLOAD_BYTES',
    () => raw(Buffer.alloc(MAX_UPLOAD_BYTES + 1, 1), 'image/png'),
    413,
    'PAYLOAD_TOO_LARGE',
  ],
  [
    'a 100 KB JSON body',
    () => raw(`{"x":"${'a'.repeat(100_000)}"}`, 'application/json'),
    413,
    'PAYLOAD_TOO_LARGE',
  ],

  // Multipart structure
  [
    'two files',
    () =>
      upload([
        { name: 'file', data: text },
        { name: 'file', data: text },
      ]),
    400,
    'TOO_MANY_FILES',
  ],
  [
    'a file part under another name',
    () => upload([{ name: 'image', data: text }]),
    400,
    'VALIDATION_FAILED',
  ],
  ['fields but no file', () => upload([field('top_k', '1')]), 400, 'FILE_MISSING'],
  ['an unknown field', () => file(text, [field('colour', 'red')]), 400, 'VALIDATION_FAILED'],
  [
    'a field past MAX_FIELD_BYTES',
    () => file(text, [field('webhook', `https://example.com/${'a'.repeat(5000)}`)]),
    400,
    'VALIDATION_FAILED',
  ],
  [
    'a field given twice',
    () => file(text, [field('top_k', '1'), field('top_k', '2')]),
    400,
    'VALIDATION_FAILED',
  ],
  [
    'a field named __proto__',
    () => file(text, [field('__proto__', '{"admin":true}')]),
    400,
    'VALIDATION_FAILED',
  ],
  [
    'more parts than MAX_UPLOAD_PARTS',
    () =>
      file(
        text,
        Array.from({ length: 20 }, (_, i) => field(`f${i}`, 'x')),
      ),
    400,
    'VALIDATION_FAILED',
  ],
  [
    'multipart without a boundary',
    () => ({ body: 'anything', headers: { 'content-type': 'multipart/form-data' } }),
    400,
    'VALIDATION_FAILED',
  ],
  [
    'multipart whose boundary never appears',
    () => ({
      body: file(text).body,
      headers: { 'content-type': 'multipart/form-data; boundary=nope' },
    }),
    400,
    'VALIDATION_FAILED',
  ],

  // Parameters and headers
  [
    'an unknown query parameter',
    () => ({ path: '/predict/text_orientation?colour=red', ...file(text) }),
    400,
    'VALIDATION_FAILED',
  ],
  [
    'top_k that is not a number',
    () => file(text, [field('top_k', 'ten')]),
    400,
    'VALIDATION_FAILED',
  ],
  ['a threshold above 1', () => file(text, [field('threshold', '2')]), 400, 'VALIDATION_FAILED'],
  [
    'a priority of 11',
    () => ({
      path: '/jobs',
      ...file(text, [field('model', 'text_orientation'), field('priority', '11')]),
    }),
    400,
    'VALIDATION_FAILED',
  ],
  [
    'an Idempotency-Key of 300 characters',
    () => withHeaders(file(text), { 'idempotency-key': 'k'.repeat(300) }),
    400,
    'VALIDATION_FAILED',
  ],
  [
    'an Idempotency-Key that is not ASCII',
    () => withHeaders(file(text), { 'idempotency-key': 'caf\u00e9' }),
    400,
    'VALIDATION_FAILED',
  ],
  [
    'a Cancel-After that is not a duration',
    () => withHeaders(file(text), { 'cancel-after': 'soon' }),
    400,
    'VALIDATION_FAILED',
  ],
  [
    'a negative Cancel-After',
    () => withHeaders(file(text), { 'cancel-after': '-5s' }),
    400,
    'VALIDATION_FAILED',
  ],
  [
    'both Cancel-After and a deadline field',
    () => withHeaders(file(text, [field('deadline', '30')]), { 'cancel-after': '30s' }),
    400,
    'VALIDATION_FAILED',
  ],
  [
    'a Cancel-After past what a date holds',
    () => withHeaders(file(text), { 'cancel-after': '999999999h999999999h999999999h' }),
    400,
    'VALIDATION_FAILED',
  ],
  [
    'a deadline in the year 9999',
    () => file(text, [field('deadline', '9999-12-31T23:59:59Z')]),
    400,
    'VALIDATION_FAILED',
  ],
  [
    'a deadline in the past',
    () => file(text, [field('deadline', '2001-01-01T00:00:00Z')]),
    400,
    'VALIDATION_FAILED',
  ],
  [
    'a limit of 1000 on GET /jobs',
    () => ({ method: 'GET', path: '/jobs?limit=1000' }),
    400,
    'VALIDATION_FAILED',
  ],
  [
    'a forged cursor on GET /jobs',
    () => ({ method: 'GET', path: '/jobs?cursor=bm90LWEtY3Vyc29y' }),
    400,
    'VALIDATION_FAILED',
  ],

  // Webhook targets (server-side request forgery)
  [
    'a webhook at the cloud metadata address',
    () => file(text, [field('webhook', 'http://169.254.169.254/latest/meta-data/')]),
    422,
    'WEBHOOK_URL_REFUSED',
  ],
  [
    'a webhook at IPv6 loopback',
    () => file(text, [field('webhook', 'http://[::1]:8000/admin')]),
    422,
    'WEBHOOK_URL_REFUSED',
  ],
  [
    'a webhook at 127.0.0.1 written as a number',
    () => file(text, [field('webhook', 'http://2130706433/')]),
    422,
    'WEBHOOK_URL_REFUSED',
  ],
  [
    'a webhook at an IPv4-mapped private address',
    () => file(text, [field('webhook', 'http://[::ffff:10.0.0.1]/')]),
    422,
    'WEBHOOK_URL_REFUSED',
  ],
  [
    'a file: webhook',
    () => file(text, [field('webhook', 'file:///etc/passwd')]),
    422,
    'WEBHOOK_URL_REFUSED',
  ],
  [
    'a webhook with credentials',
    () => file(text, [field('webhook', 'https://user:pass@example.com/')]),
    422,
    'WEBHOOK_URL_REFUSED',
  ],
  [
    'an unknown webhook event',
    () =>
      file(text, [field('webhook', 'https://example.com/h'), field('webhook_events', 'exploded')]),
    400,
    'VALIDATION_FAILED',
  ],

  // Accepted: hostile-looking, but fine
  [
    'a real PNG declared as GIF, named ../../x.svg (judged by content)',
    () => upload([{ name: 'file', data: text, filename: '../../x.svg', contentType: 'image/gif' }]),
    200,
    '',
  ],
  [
    'a malformed Prefer header (ignored, as RFC 7240 asks)',
    () => withHeaders(file(text), { prefer: 'wait=forever, respond-sync' }),
    200,
    '',
  ],
];

function withHeaders(request: Request, headers: Record<string, string>): Request {
  return { ...request, headers: { ...request.headers, ...headers } };
}

let pngBomb: Buffer;
let pngBig: Buffer;
let strip: Buffer;

describe('hostile and malformed requests', () => {
  beforeAll(async () => {
    stack = await startStack(services, {
      apiKeys: KEYS,
      adminKey: ADMIN,
      env: {
        MAX_UPLOAD_BYTES: String(MAX_UPLOAD_BYTES),
        MAX_IMAGE_DIMENSION: String(MAX_IMAGE_DIMENSION),
        REQUEST_TIMEOUT_MS: String(REQUEST_TIMEOUT_MS),
        SYNC_WAIT_SECONDS: '20',
      },
    });
    port = Number(new URL(stack.baseUrl).port);
    text = await renderTextLine('Hostile');
    jpeg = await sharp(text).jpeg().toBuffer();
    pngBomb = await pngClaiming(100_000, 100_000);
    pngBig = await pngClaiming(20_000, 20_000);
    strip = await sharp({ create: { width: 3000, height: 2, channels: 3, background: '#fff' } })
      .png()
      .toBuffer();
    const globex = new AiGatewayClient({ baseUrl: stack.baseUrl, apiKey: KEYS.globex });
    theirJob = await globex.submit('text_orientation', text);
    acceptedJobs += 1;
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it('has at least 40 cases', () => {
    expect(cases().length).toBeGreaterThanOrEqual(40);
  });

  for (const [name, build, status, code] of cases()) {
    it(`${name}: ${status}${code ? ` ${code}` : ''}`, async () => {
      const request = build();
      const body = request.body;
      const response = await fetch(
        `${stack.baseUrl}${request.path ?? '/predict/text_orientation'}`,
        {
          method: request.method ?? 'POST',
          headers: { ...(request.anonymous ? {} : auth), ...request.headers },
          ...(body === undefined
            ? {}
            : {
                body:
                  typeof body === 'string' || body instanceof FormData
                    ? body
                    : new Uint8Array(body),
              }),
        },
      );
      const answer = (await response.json()) as Record<string, unknown>;
      expect(response.status, JSON.stringify(answer)).toBe(status);
      if (status < 400) {
        acceptedJobs += 1;
        expect(answer).toMatchObject({ status: 'succeeded' });
        return;
      }
      expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      expect(answer).toMatchObject({
        status,
        code,
        title: expect.any(String),
        detail: expect.any(String),
      });
      expect(answer.type).toBe(`urn:ai-gateway:problem:${code.toLowerCase().replaceAll('_', '-')}`);
      expect(answer.request_id).toBe(response.headers.get('x-request-id'));
      expectNoInternals(JSON.stringify(answer));
      if (status === 401)
        expect(response.headers.get('www-authenticate')).toMatch(/^Bearer realm=/);
    });
  }

  describe('at the byte level', () => {
    const expectProblem = (
      answer: { status: number; headers: Record<string, string>; body: string },
      status: number,
      code: string,
    ) => {
      expect(answer.status).toBe(status);
      expect(answer.headers['content-type']).toMatch(/^application\/problem\+json/);
      const problem = JSON.parse(answer.body) as Record<string, unknown>;
      expect(problem).toMatchObject({ status, code });
      expectNoInternals(answer.body);
    };

    it('garbage instead of HTTP: 400 MALFORMED_REQUEST, connection closed', async () => {
      const answer = await rawRequest(port, [
        '\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 hello\r\n\r\n',
      ]);
      expectProblem(answer, 400, 'MALFORMED_REQUEST');
      expect(answer.closed).toBe(true);
    });

    it('Content-Length and Transfer-Encoding together (request smuggling): 400 MALFORMED_REQUEST', async () => {
      const answer = await rawRequest(port, [
        'POST /predict/text_orientation HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /admin/queues HTTP/1.1\r\nHost: x\r\n\r\n',
      ]);
      expectProblem(answer, 400, 'MALFORMED_REQUEST');
    });

    it('a Content-Length that is not a number: 400 MALFORMED_REQUEST', async () => {
      const answer = await rawRequest(port, [
        'POST /jobs HTTP/1.1\r\nHost: x\r\nContent-Length: ten\r\n\r\n',
      ]);
      expectProblem(answer, 400, 'MALFORMED_REQUEST');
    });

    it('a broken chunk size: 400 MALFORMED_REQUEST', async () => {
      const answer = await rawRequest(port, [
        `POST /jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEYS.acme}\r\nContent-Type: image/png\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n`,
      ]);
      expectProblem(answer, 400, 'MALFORMED_REQUEST');
    });

    it('a header name with a space: 400 MALFORMED_REQUEST', async () => {
      const answer = await rawRequest(port, [
        'GET /health HTTP/1.1\r\nHost: x\r\nBad Header: 1\r\n\r\n',
      ]);
      expectProblem(answer, 400, 'MALFORMED_REQUEST');
    });

    it('32 KB of headers: 431 HEADERS_TOO_LARGE', async () => {
      const answer = await rawRequest(port, [
        `GET /jobs HTTP/1.1\r\nHost: x\r\nX-Padding: ${'p'.repeat(32 * 1024)}\r\n\r\n`,
      ]);
      expectProblem(answer, 431, 'HEADERS_TOO_LARGE');
    });

    it('a slow client (headers never finished): 408 REQUEST_TIMEOUT after REQUEST_TIMEOUT_MS', async () => {
      const started = Date.now();
      const answer = await rawRequest(port, ['GET /jobs HTTP/1.1\r\nHost: x\r\nX-Slow: '], {
        timeoutMs: REQUEST_TIMEOUT_MS + 5000,
      });
      expectProblem(answer, 408, 'REQUEST_TIMEOUT');
      expect(Date.now() - started).toBeGreaterThanOrEqual(REQUEST_TIMEOUT_MS - 100);
    });

    it('a path that climbs out of the root: 404 ROUTE_NOT_FOUND', async () => {
      const answer = await rawRequest(port, [
        `GET /../../../etc/passwd HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEYS.acme}\r\n\r\n`,
      ]);
      expectProblem(answer, 404, 'ROUTE_NOT_FOUND');
    });

    it('a multipart body cut off before its closing boundary: 400 VALIDATION_FAILED', async () => {
      const { body, contentType } = multipartBody([{ name: 'file', data: text }]);
      const cut = body.subarray(0, body.length - 40);
      const answer = await rawRequest(port, [
        `POST /predict/text_orientation HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEYS.acme}\r\nContent-Type: ${contentType}\r\nContent-Length: ${cut.length}\r\n\r\n`,
        cut,
      ]);
      expectProblem(answer, 400, 'VALIDATION_FAILED');
    });

    it('a part header without a name: 400 VALIDATION_FAILED', async () => {
      const body = Buffer.from(
        '--b\r\nContent-Disposition: form-data\r\nContent-Type: image/png\r\n\r\nxxxx\r\n--b--\r\n',
      );
      const answer = await rawRequest(port, [
        `POST /predict/text_orientation HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEYS.acme}\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: ${body.length}\r\n\r\n`,
        body,
      ]);
      expect(answer.status).toBeGreaterThanOrEqual(400);
      expect(answer.status).toBeLessThan(500);
      expect(JSON.parse(answer.body)).toMatchObject({
        code: expect.stringMatching(/^(VALIDATION_FAILED|FILE_MISSING)$/),
      });
    });
  });

  describe('afterwards', () => {
    it('the service is healthy and serves a real request', async () => {
      expect(stack.api.running).toBe(true);
      const health = await fetch(`${stack.baseUrl}/health`);
      expect(health.status).toBe(200);
      // Degraded at most: the registry's TF Serving models have no worker in this stack.
      expect(await health.json()).toMatchObject({
        status: expect.stringMatching(/^(healthy|degraded)$/),
        services: { backends: { onnx: true }, redis: 'up', storage: 'up' },
      });
      const client = new AiGatewayClient({ baseUrl: stack.baseUrl, apiKey: KEYS.acme });
      const job = await client.predict('text_orientation', text);
      acceptedJobs += 1;
      expect(job.status).toBe('succeeded');
    });

    it('ran a job only for what it accepted', async () => {
      const done = () => stack.workers[0]!.logs().filter((l) => l.msg === 'job done').length;
      await expect.poll(done, { timeout: 10_000 }).toBe(acceptedJobs);
    });

    it('never wrote a key to its logs', () => {
      const lines = [...stack.api.lines, ...stack.workers.flatMap((w) => w.lines)];
      for (const key of [...Object.values(KEYS), ADMIN, 'not-a-key-at-all-000000']) {
        expect(lines.filter((line) => line.includes(key))).toEqual([]);
      }
      expect(stack.api.logs().some((l) => l.msg === 'request refused')).toBe(true);
    });
  });
});

function expectNoInternals(body: string) {
  expect(body).not.toMatch(/\n\s+at |node_modules|\/work\/|\.ts:\d+|Error: /);
}
