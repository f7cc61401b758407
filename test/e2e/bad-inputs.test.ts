import { randomBytes } from 'node:crypto';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderTextLine } from '../fixtures/images.js';
import { imageForm } from '../support/http.js';
import { sharedServices } from '../support/shared-services.js';
import { type Stack, startStack } from '../support/stack.js';

const MAX_UPLOAD_BYTES = 200_000;
const MAX_IMAGE_PIXELS = 1_000_000;

describe('bad inputs are refused before anything is queued, each with its status and code', () => {
  const services = sharedServices();
  let stack: Stack;
  let text: Buffer;

  beforeAll(async () => {
    stack = await startStack(services, {
      env: {
        MAX_UPLOAD_BYTES: String(MAX_UPLOAD_BYTES),
        MAX_IMAGE_PIXELS: String(MAX_IMAGE_PIXELS),
      },
    });
    text = await renderTextLine();
  });
  afterAll(async () => {
    await stack?.stop();
  });

  const post = async (path: string, init: RequestInit) => {
    const response = await fetch(`${stack.baseUrl}${path}`, { method: 'POST', ...init });
    return { response, body: (await response.json()) as Record<string, unknown> };
  };

  const cases: [string, () => Promise<{ path?: string; init: RequestInit }>, number, string][] = [
    ['no body at all', async () => ({ init: {} }), 400, 'FILE_MISSING'],
    [
      'multipart without a file part',
      async () => {
        const form = new FormData();
        form.set('top_k', '1');
        return { init: { body: form } };
      },
      400,
      'FILE_MISSING',
    ],
    [
      'an upload over the size limit',
      async () => ({ init: { body: imageForm(randomBytes(MAX_UPLOAD_BYTES + 1)) } }),
      413,
      'PAYLOAD_TOO_LARGE',
    ],
    [
      'a raw body over the size limit',
      async () => ({
        init: {
          body: randomBytes(MAX_UPLOAD_BYTES + 1),
          headers: { 'content-type': 'image/jpeg' },
        },
      }),
      413,
      'PAYLOAD_TOO_LARGE',
    ],
    [
      'text declared as image/png',
      async () => ({
        init: { body: 'definitely not an image', headers: { 'content-type': 'image/png' } },
      }),
      415,
      'UNSUPPORTED_MEDIA_TYPE',
    ],
    [
      'random bytes in the file part',
      async () => ({ init: { body: imageForm(randomBytes(5000)) } }),
      415,
      'UNSUPPORTED_MEDIA_TYPE',
    ],
    [
      'JSON instead of an image',
      async () => ({
        init: { body: '{"image":"x"}', headers: { 'content-type': 'application/json' } },
      }),
      415,
      'UNSUPPORTED_MEDIA_TYPE',
    ],
    [
      'a truncated PNG',
      async () => ({ init: { body: imageForm(text.subarray(0, Math.floor(text.length * 0.6))) } }),
      422,
      'INVALID_IMAGE',
    ],
    [
      'a truncated JPEG',
      async () => {
        const jpeg = await sharp(text).jpeg().toBuffer();
        return { init: { body: imageForm(jpeg.subarray(0, jpeg.length - 200)) } };
      },
      422,
      'INVALID_IMAGE',
    ],
    [
      'more pixels than the limit',
      async () => {
        const big = await sharp({
          create: { width: 1200, height: 1000, channels: 3, background: '#fff' },
        })
          .png()
          .toBuffer();
        return { init: { body: imageForm(big) } };
      },
      422,
      'IMAGE_TOO_LARGE',
    ],
    [
      'an unknown model',
      async () => ({ path: '/predict/no_such_model', init: { body: imageForm(text) } }),
      404,
      'MODEL_NOT_FOUND',
    ],
    [
      'a model whose file is missing',
      async () => ({ path: '/predict/mobilenet_v3', init: { body: imageForm(text) } }),
      503,
      'MODEL_UNAVAILABLE',
    ],
    [
      'a model whose backend has no worker',
      async () => ({ path: '/predict/image_classifier', init: { body: imageForm(text) } }),
      503,
      'MODEL_UNAVAILABLE',
    ],
    [
      'an invalid top_k',
      async () => ({ init: { body: imageForm(text, { top_k: '0' }) } }),
      400,
      'VALIDATION_FAILED',
    ],
    [
      'two files',
      async () => {
        const form = imageForm(text);
        form.append('file', new Blob([new Uint8Array(text)]), 'second.png');
        return { init: { body: form } };
      },
      400,
      'TOO_MANY_FILES',
    ],
  ];

  for (const [name, build, status, code] of cases) {
    it(`${name}: ${status} ${code}`, async () => {
      const { path = '/predict/text_orientation', init } = await build();
      const { response, body } = await post(path, init);

      expect(response.status).toBe(status);
      expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      expect(body).toMatchObject({ status, code, title: expect.any(String) });
      expect(body.type).toMatch(/^urn:ai-gateway:problem:/);
      expect(body.detail).toEqual(expect.any(String));
      expect(body.request_id).toBe(response.headers.get('x-request-id'));
      expect(JSON.stringify(body)).not.toMatch(/\n\s+at |node_modules/);
      if (status === 503) expect(response.headers.get('retry-after')).toMatch(/^\d+$/);
    });
  }

  it('says a model has no file, without the server path (that is for the admin and the logs)', async () => {
    const { body } = await post('/predict/mobilenet_v3', { body: imageForm(text) });
    expect(body.detail).toMatch(/no model file for any version in the model repository/);
    expect(body.detail).not.toMatch(/model\.onnx|\//);
  });

  it('queued nothing for any of them, and stays healthy', async () => {
    const jobs = stack.workers[0]!.logs().filter((l) => l.msg === 'job done');
    expect(jobs).toHaveLength(0);
    const health = await fetch(`${stack.baseUrl}/health/ready`);
    expect(health.status).toBe(200);
  });

  it('a PNG damaged inside its data but complete at the end fails in the worker: 422 with the job id', async () => {
    const png = Buffer.from(await sharp(text).png({ compressionLevel: 0 }).toBuffer());
    // Overwrite bytes in the middle of the pixel data: the header and the IEND chunk stay intact.
    png.fill(0xa5, Math.floor(png.length / 2), Math.floor(png.length / 2) + 64);
    const { response, body } = await post('/predict/text_orientation', { body: imageForm(png) });

    expect(response.status).toBe(422);
    expect(body).toMatchObject({ code: 'INVALID_IMAGE', job_id: expect.any(String) });
    const job = await (await fetch(`${stack.baseUrl}/jobs/${body.job_id}`)).json();
    expect(job).toMatchObject({ status: 'failed', attempts: 1, error: { code: 'INVALID_IMAGE' } });
  });
});
