import { randomUUID } from 'node:crypto';
import { Queue } from 'bullmq';
import type { QueueName } from '../../shared/queues/index.js';
import { OipV2StandIn } from '../fixtures/oip-v2-stand-in.js';
import { TfServingStandIn, type TfStandInModel } from '../fixtures/tf-serving-stand-in.js';
import {
  type CompiledBuild,
  type ServiceProcess,
  startApi,
  startWebhookWorker,
  startWorker,
} from './processes.js';
import { cleanRedisPrefix, type TestServices, uniquePrefix } from './services.js';

/** Fastify's line once the API listens, with the port it took. */
const LISTENING = /Server listening at http:\/\/127\.0\.0\.1:(\d+)/;
/**
 * How long a process may take to start. Run from the sources, each compiles them first: on a
 * shared 2-core host under load, an API, a worker and a webhooks worker starting together took 40 s
 * (measured).
 */
const START_TIMEOUT_MS = 90_000;

/** The API and ONNX workers as real processes, on their own Redis prefix and bucket. */
export interface Stack {
  baseUrl: string;
  env: Record<string, string>;
  /**
   * Headers that authenticate as the first of `apiKeys` (`Authorization: Bearer`); empty when the
   * stack runs open.
   */
  headers: Record<string, string>;
  api: ServiceProcess;
  workers: ServiceProcess[];
  /** TF Serving stand-ins the tensorflow workers call (TENSORFLOW_SERVING_URL), when asked for. */
  tfServing: TfServingStandIn[];
  /** Open Inference Protocol stand-ins the onnx workers call (ONNX_RUNTIME_URL), when asked for. */
  oipV2: OipV2StandIn[];
  /** The webhooks worker, when the stack was started with `webhooks: true`. */
  webhooks?: ServiceProcess;
  addWorker(env?: Record<string, string>, backend?: 'onnx' | 'tensorflow'): Promise<ServiceProcess>;
  stop(): Promise<void>;
}

export interface StackOptions {
  /** ONNX workers. @defaultValue 1 */
  workers?: number;
  /** TF Serving workers. @defaultValue 0 */
  tensorflowWorkers?: number;
  /** Extra or overriding environment for every process. */
  env?: Record<string, string>;
  /** Extra environment for the API alone (a setting of its role only). */
  apiEnv?: Record<string, string>;
  /** Start TF Serving stand-ins serving these models, one per replica. */
  tfServing?: { replicas: number; models: Record<string, TfStandInModel> };
  /** Start Open Inference Protocol stand-ins (ONNX bytes per model and version), one per replica. */
  oipV2?: { replicas: number; models: Record<string, Record<string, Uint8Array>> };
  /** Models to wait for before the stack counts as started. @defaultValue ['text_orientation'] */
  readyModels?: string[];
  /**
   * Start a webhooks worker too (`workers/main.ts --webhooks`).
   * @defaultValue false
   */
  webhooks?: boolean;
  /** API keys by id (API_KEYS); absent: the API runs open. */
  apiKeys?: Record<string, string>;
  /** The admin key (ADMIN_API_KEY). */
  adminKey?: string;
  /** Run every process from this compiled output instead of the sources (compiled-build.ts). */
  compiled?: CompiledBuild;
}

export async function startStack(
  services: TestServices,
  options: StackOptions = {},
): Promise<Stack> {
  const prefix = uniquePrefix();
  const env: Record<string, string> = {
    NODE_ENV: 'test',
    LOG_LEVEL: 'info',
    HOST: '127.0.0.1',
    // The API binds a free port itself and logs it: no window in which another process could take
    // a port chosen here first.
    PORT: '0',
    REDIS_URL: services.redisUrl,
    REDIS_PREFIX: prefix,
    S3_ENDPOINT: services.s3.endpoint,
    S3_BUCKET: `e2e-${randomUUID().slice(0, 8)}`,
    S3_REGION: services.s3.region,
    S3_ACCESS_KEY: services.s3.accessKeyId,
    S3_SECRET_KEY: services.s3.secretAccessKey,
    RATE_LIMIT_ENABLED: 'false',
    WORKER_HEARTBEAT_MS: '1000',
    // Several workers share this host: each takes a free port for its /metrics.
    WORKER_METRICS_PORT: '0',
    // A killed worker's jobs are noticed within seconds instead of the production half minute.
    WORKER_LOCK_DURATION_MS: '4000',
    WORKER_STALLED_INTERVAL_MS: '2000',
    // Load shedding off unless a test is about it (load-shedding.test.ts sets its own threshold).
    // These processes share a couple of cores with the test runner and each other: a stall of half
    // a second leaves @fastify/under-pressure with no sample ('event loop blocked') and the API
    // sheds requests the test expects answered (seen: 503 OVERLOADED in load-and-crash and
    // deadlines under two busy processes).
    MAX_EVENT_LOOP_DELAY_MS: '0',
    // The result cache off unless a test is about it: tests send the same fixture image again and
    // again and expect each request to run its job.
    RESULT_CACHE_TTL_SECONDS: '0',
    ...(options.apiKeys
      ? {
          API_KEYS: Object.entries(options.apiKeys)
            .map(([id, key]) => `${id}:${key}`)
            .join(','),
        }
      : {}),
    ...(options.adminKey ? { ADMIN_API_KEY: options.adminKey } : {}),
    ...options.env,
  };
  const [firstKey] = Object.values(options.apiKeys ?? {});
  const headers: Record<string, string> = firstKey ? { authorization: `Bearer ${firstKey}` } : {};
  let baseUrl = '';
  const workers: ServiceProcess[] = [];
  const tfServing = await Promise.all(
    Array.from({ length: options.tfServing?.replicas ?? 0 }, () =>
      TfServingStandIn.start(options.tfServing!.models),
    ),
  );
  const oipV2 = await Promise.all(
    Array.from({ length: options.oipV2?.replicas ?? 0 }, () =>
      OipV2StandIn.start(options.oipV2!.models),
    ),
  );
  if (tfServing.length > 0) env.TENSORFLOW_SERVING_URL = tfServing.map((s) => s.url).join(',');
  if (oipV2.length > 0) env.ONNX_RUNTIME_URL = oipV2.map((s) => s.url).join(',');
  const standIns = [...tfServing, ...oipV2];

  const addWorker = async (
    extra: Record<string, string> = {},
    backend: 'onnx' | 'tensorflow' = 'onnx',
  ) => {
    const worker = startWorker({ ...env, ...extra }, backend, options.compiled);
    workers.push(worker);
    await worker.waitForLog(/"worker started"/, START_TIMEOUT_MS);
    return worker;
  };

  const api = startApi({ ...env, ...options.apiEnv }, options.compiled);
  const webhooks = options.webhooks ? startWebhookWorker(env, options.compiled) : undefined;
  const processes = [api, ...(webhooks ? [webhooks] : [])];
  try {
    const [listening] = await Promise.all([
      api.waitForLog(LISTENING, START_TIMEOUT_MS),
      ...(webhooks ? [webhooks.waitForLog(/"webhooks worker started"/, START_TIMEOUT_MS)] : []),
      ...Array.from({ length: options.workers ?? 1 }, () => addWorker()),
      ...Array.from({ length: options.tensorflowWorkers ?? 0 }, () => addWorker({}, 'tensorflow')),
    ]);
    const port = LISTENING.exec(listening)![1]!;
    // An API restarted from `env` comes back where the tests look for it.
    env.PORT = port;
    baseUrl = `http://127.0.0.1:${port}`;
    const ready = options.readyModels ?? ((options.workers ?? 1) > 0 ? ['text_orientation'] : []);
    for (const model of ready) await waitUntilModelReady(baseUrl, model, 15_000, headers);
  } catch (err) {
    await Promise.all([...processes.map((s) => s.stop()), ...workers.map((w) => w.stop())]);
    await Promise.all(standIns.map((s) => s.close()));
    throw err;
  }

  return {
    baseUrl,
    env,
    headers,
    api,
    workers,
    tfServing,
    oipV2,
    ...(webhooks ? { webhooks } : {}),
    addWorker,
    async stop() {
      await Promise.all([...processes.map((s) => s.stop()), ...workers.map((w) => w.stop())]);
      await Promise.all(standIns.map((s) => s.close()));
      await cleanRedisPrefix(services.redisUrl, prefix);
    },
  };
}

/**
 * A BullMQ handle on one of the stack's queues, for tests that check what it holds (a job's state,
 * whether anything is left to run); the caller closes it.
 */
export function openQueue(stack: Stack, name: QueueName): Queue {
  return new Queue(name, {
    connection: { url: stack.env.REDIS_URL! },
    prefix: stack.env.REDIS_PREFIX!,
  });
}

/** The API routes by the workers' reports, which it refreshes every second. */
export async function waitUntilModelReady(
  baseUrl: string,
  model: string,
  timeoutMs = 15_000,
  headers: Record<string, string> = {},
) {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    const response = await fetch(`${baseUrl}/models/${model}`, { headers }).catch(() => undefined);
    if (response?.ok && ((await response.json()) as { status: string }).status === 'ready') return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`model ${model} not ready within ${timeoutMs} ms`);
}
