import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import type { Config } from '../shared/config/config.js';
import { waitUntilModelReady } from '../test/support/stack.js';
import { BenchProcess } from './bench-process.js';
import { BENCH_MODEL } from './in-process-pipeline.js';
import { unlinkPrefix } from './redis-keys.js';
import type { Teardown } from './teardown.js';

/** Fastify's line once the API listens, with the port it took. */
const LISTENING = /Server listening at http:\/\/127\.0\.0\.1:(\d+)/;
/** The worker's line once its /metrics listens (WORKER_METRICS_PORT=0 takes any free port). */
const METRICS_LISTENING = /"url":"(http:\/\/[^"]+\/metrics)"[^\n]*"worker metrics listening"/;

/** What a benchmark may change about the gateway it starts; every field has a default. */
export interface GatewayStackOptions {
  /** Names its processes' logs and its Redis prefix, for runs of several stacks. @defaultValue 'gateway' */
  name?: string;
  /** The worker's backend (`workers/main.ts --backend`). @defaultValue 'onnx' */
  backend?: 'onnx' | 'tensorflow';
  /** Extra or overriding environment of both processes (MODELS_CONFIG, BATCH_MAX_SIZE, ...). */
  env?: Record<string, string>;
  /** The model to wait for before the stack counts as started. @defaultValue BENCH_MODEL */
  model?: string;
  /** Node flags of both processes (`--cpu-prof`). */
  nodeArgs?: string[];
  /** The source tree both processes run from (another checkout, to compare). @defaultValue this one */
  root?: string;
}

/** The gateway as `npm start` runs it: one API process and one ONNX worker process. */
export interface GatewayStack {
  baseUrl: string;
  /** `Authorization: Bearer` with the benchmark's API key. */
  headers: Record<string, string>;
  /** The REDIS_PREFIX both processes run under. */
  prefix: string;
  /** The model the stack waited for. */
  model: string;
  /** The worker's Prometheus endpoint. */
  metricsUrl: string;
  api: BenchProcess;
  worker: BenchProcess;
}

/**
 * Starts the API and a worker (ONNX unless `stack.backend` says otherwise) in production mode (an
 * API key, a webhook signing secret, info-level logs to files), rate limiting off, on a Redis prefix
 * and a local storage folder of their own; resolves once the model is ready. Processes, keys and
 * folder go into `teardown`.
 */
export async function startGatewayStack(
  options: { config: Config; logDir: string; teardown: Teardown },
  stack: GatewayStackOptions = {},
): Promise<GatewayStack> {
  const { config, logDir, teardown } = options;
  const name = stack.name ?? 'gateway';
  const backend = stack.backend ?? 'onnx';
  const model = stack.model ?? BENCH_MODEL;
  const prefix = `bench-${name}-${process.pid}`;
  const storage = mkdtempSync(join(tmpdir(), 'ai-gateway-bench-'));
  teardown.add(`${name}: storage folder ${storage}`, () =>
    rmSync(storage, { recursive: true, force: true }),
  );
  const cleaner = new Redis(config.redis.url);
  teardown.add(`${name}: Redis connection`, () => void cleaner.disconnect());
  teardown.add(
    `${name}: keys under ${prefix}`,
    async () => void (await unlinkPrefix(cleaner, prefix)),
  );

  const apiKey = randomBytes(24).toString('hex');
  const env = {
    NODE_ENV: 'production',
    LOG_LEVEL: 'info',
    HOST: '127.0.0.1',
    // The API binds a free port itself and logs it.
    PORT: '0',
    REDIS_URL: config.redis.url,
    REDIS_PREFIX: prefix,
    LOCAL_STORAGE_DIR: storage,
    RATE_LIMIT_ENABLED: 'false',
    // Production mode refuses to run open or unsigned.
    API_KEYS: `bench:${apiKey}`,
    WEBHOOK_SECRET: `whsec_${randomBytes(32).toString('base64')}`,
    // The machine is shared: the default worker metrics port (9464) may be taken.
    WORKER_METRICS_PORT: '0',
    ...stack.env,
  };
  const api = BenchProcess.start(`${name}-api`, ['api/main.ts'], {
    logDir,
    env,
    nodeArgs: stack.nodeArgs,
    cwd: stack.root,
  });
  teardown.add(`${name} API process`, () => api.stop());
  const worker = BenchProcess.start(
    `${name}-worker-${backend}`,
    ['workers/main.ts', '--backend', backend],
    { logDir, env, nodeArgs: stack.nodeArgs, cwd: stack.root },
  );
  teardown.add(`${name} worker process`, () => worker.stop());

  const [[, port], [, metricsUrl]] = await Promise.all([
    api.waitForLine(LISTENING),
    worker.waitForLine(METRICS_LISTENING),
    worker.waitForLine(/"worker started"/),
  ]);
  const baseUrl = `http://127.0.0.1:${port}`;
  const headers = { authorization: `Bearer ${apiKey}` };
  await waitUntilModelReady(baseUrl, model, 30_000, headers);
  return { baseUrl, headers, prefix, model, metricsUrl: metricsUrl!, api, worker };
}
