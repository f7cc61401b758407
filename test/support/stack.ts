import { randomUUID } from 'node:crypto';
import {
  freePort,
  type ServiceProcess,
  startApi,
  startWebhookWorker,
  startWorker,
} from './processes.js';
import { cleanRedisPrefix, type TestServices, uniquePrefix } from './services.js';

/** The API and ONNX workers as real processes, on their own Redis prefix and bucket. */
export interface Stack {
  baseUrl: string;
  env: Record<string, string>;
  api: ServiceProcess;
  workers: ServiceProcess[];
  /** The webhooks worker, when the stack was started with `webhooks: true`. */
  webhooks?: ServiceProcess;
  addWorker(env?: Record<string, string>): Promise<ServiceProcess>;
  stop(): Promise<void>;
}

export interface StackOptions {
  workers?: number;
  /** Extra or overriding environment for every process. */
  env?: Record<string, string>;
  /**
   * Start a webhooks worker too (`workers/main.ts --webhooks`).
   * @defaultValue false
   */
  webhooks?: boolean;
}

export async function startStack(
  services: TestServices,
  options: StackOptions = {},
): Promise<Stack> {
  const prefix = uniquePrefix();
  const port = await freePort();
  const env: Record<string, string> = {
    NODE_ENV: 'test',
    LOG_LEVEL: 'info',
    HOST: '127.0.0.1',
    PORT: String(port),
    REDIS_URL: services.redisUrl,
    REDIS_PREFIX: prefix,
    S3_ENDPOINT: services.s3.endpoint,
    S3_BUCKET: `e2e-${randomUUID().slice(0, 8)}`,
    S3_REGION: services.s3.region,
    S3_ACCESS_KEY: services.s3.accessKeyId,
    S3_SECRET_KEY: services.s3.secretAccessKey,
    RATE_LIMIT_ENABLED: 'false',
    WORKER_HEARTBEAT_MS: '1000',
    // A killed worker's jobs are noticed within seconds instead of the production half minute.
    WORKER_LOCK_DURATION_MS: '4000',
    WORKER_STALLED_INTERVAL_MS: '2000',
    ...options.env,
  };
  const baseUrl = `http://127.0.0.1:${port}`;
  const workers: ServiceProcess[] = [];

  const addWorker = async (extra: Record<string, string> = {}) => {
    const worker = startWorker({ ...env, ...extra });
    workers.push(worker);
    await worker.waitForLog(/"worker started"/);
    return worker;
  };

  const api = startApi(env);
  const webhooks = options.webhooks ? startWebhookWorker(env) : undefined;
  const processes = [api, ...(webhooks ? [webhooks] : [])];
  try {
    await Promise.all([
      api.waitForLog(/Server listening/),
      ...(webhooks ? [webhooks.waitForLog(/"webhooks worker started"/)] : []),
      ...Array.from({ length: options.workers ?? 1 }, () => addWorker()),
    ]);
    if ((options.workers ?? 1) > 0) await waitUntilModelReady(baseUrl, 'text_orientation');
  } catch (err) {
    await Promise.all([...processes.map((s) => s.stop()), ...workers.map((w) => w.stop())]);
    throw err;
  }

  return {
    baseUrl,
    env,
    api,
    workers,
    ...(webhooks ? { webhooks } : {}),
    addWorker,
    async stop() {
      await Promise.all([...processes.map((s) => s.stop()), ...workers.map((w) => w.stop())]);
      await cleanRedisPrefix(services.redisUrl, prefix);
    },
  };
}

/** The API routes by the workers' reports, which it refreshes every second. */
export async function waitUntilModelReady(baseUrl: string, model: string, timeoutMs = 15_000) {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    const response = await fetch(`${baseUrl}/models/${model}`).catch(() => undefined);
    if (response?.ok && ((await response.json()) as { status: string }).status === 'ready') return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`model ${model} not ready within ${timeoutMs} ms`);
}
