/**
 * Benchmark: sync POST /predict/text_orientation with a 640x480 JPEG through the whole gateway
 * (HTTP, validation, storage, BullMQ, worker, completion listener), side by side in one run with the
 * direct in-process pipeline (same image, sharp + ONNX Runtime, no HTTP, no queue) as the reference.
 * Latency p50/p99 at concurrency 1, throughput at concurrency 32. Prints a table, writes JSON.
 *
 *   npm run bench -- [--seconds 10] [--out bench/results/predict.json]
 *
 * Needs Redis (REDIS_URL, default 127.0.0.1:6379); storage is the local-folder default.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { loadConfig } from '../shared/config/config.js';
import { ModelRegistry } from '../shared/models/registry.js';
import { noisyJpeg } from '../test/fixtures/images.js';
import { freePort, startApi, startWorker } from '../test/support/processes.js';
import { waitUntilModelReady } from '../test/support/stack.js';
import { OnnxRuntimeBackend } from '../workers/backends/onnx-runtime.backend.js';
import { classify } from '../workers/postprocess/index.js';
import { preprocess } from '../workers/preprocess/preprocess.js';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '10' },
    out: { type: 'string', default: 'bench/results/predict.json' },
  },
});
const seconds = Number(values.seconds);
const MODEL = 'text_orientation';
const API_KEY = randomBytes(24).toString('hex');

interface Phase {
  name: string;
  concurrency: number;
  requests: number;
  errors: number;
  seconds: number;
  throughput: number;
  p50_ms: number;
  p90_ms: number;
  p99_ms: number;
  mean_ms: number;
}

/** Runs `once` from `concurrency` loops for `durationS` seconds after a warm-up; latencies in ms. */
async function measure(
  name: string,
  concurrency: number,
  durationS: number,
  once: () => Promise<boolean>,
): Promise<Phase> {
  const loop = async (until: number, latencies: number[] | undefined, failures: { n: number }) => {
    while (performance.now() < until) {
      const start = performance.now();
      const ok = await once().catch(() => false);
      latencies?.push(performance.now() - start);
      if (!ok) failures.n++;
    }
  };
  const warm = performance.now() + Math.min(2000, durationS * 200);
  await Promise.all(Array.from({ length: concurrency }, () => loop(warm, undefined, { n: 0 })));

  const latencies: number[] = [];
  const failures = { n: 0 };
  const start = performance.now();
  const until = start + durationS * 1000;
  await Promise.all(Array.from({ length: concurrency }, () => loop(until, latencies, failures)));
  const elapsed = (performance.now() - start) / 1000;
  latencies.sort((a, b) => a - b);
  const at = (q: number) =>
    round(latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0);
  return {
    name,
    concurrency,
    requests: latencies.length,
    errors: failures.n,
    seconds: round(elapsed),
    throughput: round(latencies.length / elapsed),
    p50_ms: at(0.5),
    p90_ms: at(0.9),
    p99_ms: at(0.99),
    mean_ms: round(latencies.reduce((a, b) => a + b, 0) / Math.max(1, latencies.length)),
  };
}

function round(x: number): number {
  return Math.round(x * 100) / 100;
}

async function main(): Promise<void> {
  const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
  const image = await noisyJpeg(640, 480);
  const config = loadConfig({ ...process.env, REDIS_URL: redisUrl });
  const registry = ModelRegistry.load(config.models.configPath);
  const model = registry.get(MODEL)!;

  // Reference: the worker's own stages, called directly.
  const backend = new OnnxRuntimeBackend({
    repository: config.models.repository,
    intraOpThreads: config.backends.onnxIntraOpThreads,
  });
  await backend.load([model]);
  const direct = async () => {
    const input = await preprocess(image, model.input, { maxPixels: config.uploads.maxPixels });
    const { output } = await backend.infer({ model, input });
    return classify(output, { activation: 'none', topK: 2, labels: model.labels! }).length === 2;
  };

  const phases: Phase[] = [];
  phases.push(await measure('direct pipeline', 1, seconds, direct));
  phases.push(await measure('direct pipeline', 32, seconds, direct));
  await backend.close();

  // The gateway: API and one worker process, as `npm start` runs them.
  const prefix = `bench-${process.pid}`;
  const storage = mkdtempSync(join(tmpdir(), 'ai-gateway-bench-'));
  const port = await freePort();
  const env = {
    NODE_ENV: 'production',
    LOG_LEVEL: 'warn',
    HOST: '127.0.0.1',
    PORT: String(port),
    REDIS_URL: redisUrl,
    REDIS_PREFIX: prefix,
    LOCAL_STORAGE_DIR: storage,
    RATE_LIMIT_ENABLED: 'false',
    // Production mode refuses to run open or unsigned: a key for the benchmark's requests.
    API_KEYS: `bench:${API_KEY}`,
    WEBHOOK_SECRET: `whsec_${randomBytes(32).toString('base64')}`,
  };
  const api = startApi(env);
  const worker = startWorker(env);
  const baseUrl = `http://127.0.0.1:${port}`;
  const timings: Record<string, number>[] = [];
  try {
    await waitForPort(baseUrl);
    await waitUntilModelReady(baseUrl, MODEL, 30_000, { authorization: `Bearer ${API_KEY}` });
    const gateway = (sample: boolean) => async () => {
      const response = await fetch(`${baseUrl}/predict/${MODEL}`, {
        method: 'POST',
        body: image,
        headers: { 'content-type': 'image/jpeg', authorization: `Bearer ${API_KEY}` },
      });
      const body = (await response.json()) as { status?: string; timings?: Record<string, number> };
      if (sample && body.timings) timings.push(body.timings);
      return response.status === 200 && body.status === 'succeeded';
    };
    phases.push(await measure('gateway sync /predict', 1, seconds, gateway(true)));
    phases.push(await measure('gateway sync /predict', 32, seconds, gateway(false)));
  } finally {
    await Promise.all([api.stop(), worker.stop()]);
    rmSync(storage, { recursive: true, force: true });
    const redis = new Redis(redisUrl);
    const keys = await redis.keys(`${prefix}:*`);
    if (keys.length) await redis.unlink(...keys);
    redis.disconnect();
  }

  // Where the time of a c=1 gateway request goes, from the job's own timings.
  const mean = (key: string) =>
    round(timings.reduce((a, t) => a + (t[key] ?? 0), 0) / Math.max(1, timings.length));
  const c1 = phases[2]!;
  const breakdown = {
    client_ms: c1.mean_ms,
    job_total_ms: mean('total_ms'),
    queue_ms: mean('queue_ms'),
    preprocess_ms: mean('preprocess_ms'),
    inference_ms: mean('inference_ms'),
  };

  const [d1, d32, g1, g32] = phases as [Phase, Phase, Phase, Phase];
  const ratios = {
    p50_c1: round(g1.p50_ms / d1.p50_ms),
    p99_c1: round(g1.p99_ms / d1.p99_ms),
    throughput_c32: round(g32.throughput / d32.throughput),
  };

  console.log(
    `\nai-gateway predict benchmark: ${MODEL}, 640x480 JPEG, ${seconds} s per phase, ${cpus().length} cores\n`,
  );
  console.table(
    phases.map((p) => ({
      scenario: p.name,
      concurrency: p.concurrency,
      requests: p.requests,
      errors: p.errors,
      'req/s': p.throughput,
      'p50 ms': p.p50_ms,
      'p99 ms': p.p99_ms,
    })),
  );
  console.log('gateway / direct:', ratios);
  console.log('gateway c=1 mean breakdown (ms):', breakdown);

  const out = values.out!;
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(
    out,
    `${JSON.stringify(
      {
        date: new Date().toISOString(),
        node: process.version,
        cores: cpus().length,
        seconds,
        image: '640x480 JPEG',
        model: MODEL,
        phases,
        ratios,
        breakdown,
      },
      null,
      2,
    )}\n`,
  );
  console.log(`\nwrote ${out}`);
}

async function waitForPort(baseUrl: string): Promise<void> {
  for (let i = 0; i < 150; i++) {
    if (
      await fetch(`${baseUrl}/health/live`).then(
        (r) => r.ok,
        () => false,
      )
    )
      return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('API did not start');
}

void main();
