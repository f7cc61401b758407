import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Job } from '../../client/index.js';
import { buildTestApi, type TestApi } from '../support/api-harness.js';
import { type InProcessWorker, startInProcessWorker } from '../support/in-process-worker.js';
import { closedPort, solidPng, testConfig } from '../support/inference-stack.js';

const BIN = fileURLToPath(new URL('../../bin/ai-gateway.mjs', import.meta.url));
const KEY = 'cli-test-key-0123456789abcdef';
/** A key of the second API, which allows 2 requests per 2 s. */
const LIMITED_KEY = 'cli-limited-key-0123456789abcdef';
/** The colour classifier's answer for each file (test/fixtures/onnx-models.ts). */
const COLOURS = {
  'red.png': [255, 0, 0],
  'green.png': [0, 255, 0],
  'blue.png': [0, 0, 255],
} as const;
/** Past this, a CLI run counts as hung: it is killed and the test fails on its exit code. */
const RUN_TIMEOUT_MS = 60_000;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

let stack: InProcessWorker;
let api: TestApi;
let limitedApi: TestApi;
let baseUrl: string;
let limitedUrl: string;
let directory: string;
let images: string[];

beforeAll(async () => {
  stack = await startInProcessWorker({ env: { API_KEYS: `cli:${KEY}` } });
  api = await buildTestApi(stack.config, { registry: stack.registry });
  await api.app.listen({ host: '127.0.0.1', port: 0 });
  baseUrl = `http://127.0.0.1:${(api.app.server.address() as AddressInfo).port}`;
  // Another API on the same queues, storage and worker, with a tight rate limit.
  const limitedConfig = testConfig(
    stack.services,
    {
      prefix: stack.config.redis.prefix,
      bucket: stack.config.storage.bucket,
      modelRepository: stack.repository,
    },
    { API_KEYS: `limited:${LIMITED_KEY}`, RATE_LIMIT_REQUESTS: '2', RATE_LIMIT_WINDOW: '2' },
  );
  limitedApi = await buildTestApi(limitedConfig, { registry: stack.registry });
  await limitedApi.app.listen({ host: '127.0.0.1', port: 0 });
  limitedUrl = `http://127.0.0.1:${(limitedApi.app.server.address() as AddressInfo).port}`;
  directory = await mkdtemp(path.join(os.tmpdir(), 'ai-gateway-cli-'));
  images = [];
  for (const [name, rgb] of Object.entries(COLOURS)) {
    images.push(path.join(directory, name));
    await writeFile(path.join(directory, name), await solidPng([...rgb]));
  }
});
afterAll(async () => {
  await limitedApi?.close();
  await api?.close();
  await stack?.stop();
  if (directory) await rm(directory, { recursive: true, force: true });
});

/** The CLI as a user runs it (`bin/ai-gateway.mjs`), pointed at the test API by its variables. */
function cli(args: string[], env: Record<string, string> = {}): Promise<Run> {
  const { AI_GATEWAY_URL: _url, AI_GATEWAY_KEY: _key, ...inherited } = process.env;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      env: { ...inherited, AI_GATEWAY_URL: baseUrl, AI_GATEWAY_KEY: KEY, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), RUN_TIMEOUT_MS);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** stdout with --json: one document per line. */
function documents<T>(run: Run): T[] {
  return run.stdout
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as T);
}

const colourOf = (file: string) => path.basename(file, '.png');

describe('ai-gateway predict', () => {
  it('prints each image’s labels, best first, and a summary on stderr', async () => {
    const run = await cli(['predict', 'colour', ...images]);
    expect(run.stderr).toMatch(/^3 images: 3 done, 0 failed in [\d.]+ s \([\d.]+\/s\)\n$/);
    expect(run.code).toBe(0);
    const lines = run.stdout.trim().split('\n').sort();
    expect(lines).toHaveLength(3);
    for (const [index, file] of [...images].sort().entries()) {
      // `<file>  <label> <score>, ...` with the file's own colour first.
      expect(lines[index]).toMatch(new RegExp(`^${file}  ${colourOf(file)} \\d\\.\\d{3}, `));
    }
  });

  it('an unknown model: exit 1, the problem’s code and detail on stderr, the rest skipped', async () => {
    const run = await cli(['predict', 'no_such_model', ...images, '--concurrency', '1']);
    expect(run.code).toBe(1);
    expect(run.stdout).toBe('');
    expect(run.stderr).toContain(`${images[0]}: MODEL_NOT_FOUND: Model "no_such_model"`);
    expect(run.stderr).toMatch(/3 images: 0 done, 1 failed, 2 skipped/);
  });

  it('a key the API does not know: exit 1 with API_KEY_INVALID', async () => {
    const run = await cli(['predict', 'colour', images[0]!, '--key', 'not-a-key-0123456789']);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/API_KEY_INVALID/);
  });

  it('a file it cannot read fails alone: exit 1, the other images answered', async () => {
    const missing = path.join(directory, 'missing.png');
    const run = await cli(['predict', 'colour', missing, images[0]!, '--json']);
    expect(run.code).toBe(1);
    const lines = documents<{ file: string; job?: Job; error?: { code: string } }>(run);
    expect(lines.find((l) => l.file === missing)?.error?.code).toBe('FILE_UNREADABLE');
    expect(lines.find((l) => l.file === images[0])?.job?.status).toBe('succeeded');
    expect(run.stderr).toContain(`cannot read ${missing}: ENOENT`);
  });
});

describe('ai-gateway submit and jobs', () => {
  it('submit --json gives a job id per file; jobs wait returns each result', async () => {
    const submitted = await cli(['submit', 'colour', ...images, '--json', '--priority', '2']);
    expect(submitted.code).toBe(0);
    const queued = documents<{ file: string; job: Job }>(submitted);
    expect(queued.map((q) => q.file).sort()).toEqual([...images].sort());
    for (const { job } of queued) expect(job).toMatchObject({ model: 'colour', priority: 2 });

    const ids = queued.map((q) => q.job.id);
    const waited = await cli(['jobs', 'wait', ...ids, '--json']);
    expect(waited.code).toBe(0);
    const done = documents<Job>(waited);
    expect(done.map((job) => job.id).sort()).toEqual([...ids].sort());
    for (const { file, job } of queued) {
      const result = done.find((d) => d.id === job.id)!;
      expect(result.status).toBe('succeeded');
      expect(result.result).toMatchObject({
        task: 'classification',
        predictions: [{ label: colourOf(file) }, {}, {}],
      });
    }

    const got = await cli(['jobs', 'get', ids[0]!]);
    expect(got.code).toBe(0);
    expect(got.stdout).toMatch(new RegExp(`^${ids[0]}  succeeded  colour  \\w+ \\d\\.\\d{3}`));

    const listed = await cli(['jobs', 'list', '--json', '--limit', '100']);
    expect(listed.code).toBe(0);
    expect(documents<Job>(listed).map((job) => job.id)).toEqual(expect.arrayContaining(ids));
  });

  it('jobs cancel cancels a queued job; waiting for it then exits 1', async () => {
    const queue = api.queues.queue('onnx');
    // Nobody takes a job from a paused queue: it stays queued until canceled.
    await queue.pause();
    try {
      const submitted = await cli(['submit', 'colour', images[0]!, '--json']);
      expect(submitted.code).toBe(0);
      const [{ job }] = documents<{ job: Job }>(submitted) as [{ job: Job }];
      expect(job.status).toBe('queued');

      const canceled = await cli(['jobs', 'cancel', job.id, '--json']);
      expect(canceled.code).toBe(0);
      expect(documents<Job>(canceled)).toMatchObject([
        { id: job.id, status: 'canceled', error: { code: 'JOB_CANCELED' } },
      ]);

      const waited = await cli(['jobs', 'wait', job.id]);
      expect(waited.code).toBe(1);
      expect(waited.stdout).toContain(`${job.id}  canceled  colour  JOB_CANCELED`);
    } finally {
      await queue.resume();
    }
  });

  it('a rate-limited batch waits out Retry-After and sends every file', async () => {
    const files = [...images, images[0]!];
    const run = await cli(['submit', 'colour', ...files, '-c', '1'], {
      AI_GATEWAY_URL: limitedUrl,
      AI_GATEWAY_KEY: LIMITED_KEY,
    });
    expect(run.stderr).toMatch(/^RATE_LIMITED: waiting \d+ s$/m);
    expect(run.stderr).toMatch(/4 images: 4 done, 0 failed/);
    expect(run.code).toBe(0);
    expect(run.stdout.trim().split('\n')).toHaveLength(4);
  });

  it('jobs get of an unknown id: exit 1, JOB_NOT_FOUND on stderr', async () => {
    const run = await cli(['jobs', 'get', 'no-such-job']);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/^no-such-job: JOB_NOT_FOUND: /);
  });
});

describe('ai-gateway models and health', () => {
  it('models lists each model and whether it can be served', async () => {
    const run = await cli(['models']);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^colour {2}ready {2}classification {2}onnx {2}versions 1$/m);
    expect(run.stdout).toMatch(
      /^missing {2}unavailable {2}classification {2}onnx {2}no versions {2}\(/m,
    );
  });

  it('health --json prints the API’s report', async () => {
    const run = await cli(['health', '--json']);
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({
      services: { redis: 'up', storage: 'up', backends: { onnx: true } },
    });
  });
});

describe('ai-gateway errors', () => {
  it('an API nobody answers at: exit 3, and the message names the URL', async () => {
    const url = `http://127.0.0.1:${await closedPort()}`;
    const run = await cli(['health', '--url', url]);
    expect(run.code).toBe(3);
    expect(run.stderr).toBe(
      `ai-gateway: cannot reach ${url} (ECONNREFUSED): is the API running there? Set --url or AI_GATEWAY_URL\n`,
    );
  });

  it('a batch stops at the first connection failure: exit 3, the rest skipped', async () => {
    const url = `http://127.0.0.1:${await closedPort()}`;
    const run = await cli(['submit', 'colour', ...images, '-c', '1'], { AI_GATEWAY_URL: url });
    expect(run.code).toBe(3);
    expect(run.stderr).toMatch(/3 images: 0 done, 1 failed, 2 skipped/);
  });

  it.each([
    [['frobnicate'], /no command "frobnicate"/],
    [['submit', 'colour'], /submit needs a model and at least one image/],
    [
      ['submit', 'colour', 'red.png', '--priority', '11'],
      /--priority must be an integer from 1 to 10/,
    ],
    [
      ['predict', 'colour', 'red.png', '--webhook', 'https://example.com'],
      /Unknown option '--webhook'/,
    ],
    [['jobs', 'wait'], /jobs wait needs a job id/],
    [['models', '--url', 'ftp://example.com'], /--url must be an http\(s\) URL/],
  ])('a usage error exits 2 with what is wrong: %j', async (args, message) => {
    const run = await cli(args);
    expect(run.code).toBe(2);
    expect(run.stdout).toBe('');
    expect(run.stderr).toMatch(message);
  });
});
