import { type ServiceProcess, startApi } from '../../support/processes.js';
import { S3RVER_CREDENTIALS, type TestServices } from '../../support/services.js';
import { type Stack, type StackOptions, startStack } from '../../support/stack.js';
import { WebhookReceiver } from '../../support/webhook-receiver.js';
import { RedisServer } from './redis-server.js';
import { S3Server } from './s3-server.js';

const LISTENING = /Server listening at http:\/\/127\.0\.0\.1:(\d+)/;
export const CHAOS_KEY = 'chaos-key-0123456789abcdef';
/** Processes compile their sources as they start, several at once on a couple of cores. */
const START_TIMEOUT_MS = 120_000;

/**
 * Everything a fault scenario runs on, as real processes on loopback: a Redis of its own with the
 * append-only file on, the S3 protocol server, the API, ONNX workers, the webhooks worker, and a
 * webhook receiver. Every worker process ever started is kept, so its log lines can be counted.
 */
export class ChaosStack {
  readonly everyWorker: ServiceProcess[] = [];

  private constructor(
    readonly redis: RedisServer,
    readonly s3: S3Server,
    readonly stack: Stack,
    readonly receiver: WebhookReceiver,
  ) {
    this.everyWorker.push(...stack.workers);
  }

  static async start(options: StackOptions = {}): Promise<ChaosStack> {
    const [redis, s3, receiver] = await Promise.all([
      RedisServer.start(),
      S3Server.start(),
      WebhookReceiver.start(),
    ]);
    const services: TestServices = {
      redisUrl: redis.url,
      s3: { endpoint: s3.endpoint, bucket: 'chaos', region: 'us-east-1', ...S3RVER_CREDENTIALS },
      runtime: 'local',
    };
    const stack = await startStack(services, {
      workers: 2,
      webhooks: true,
      apiKeys: { chaos: CHAOS_KEY },
      ...options,
      env: {
        WEBHOOK_ALLOW_PRIVATE: 'true',
        // Locks long enough to outlast a Redis restart (a finished job's result is written again
        // after a quarter of it), short enough that a killed worker's jobs run again within seconds.
        WORKER_LOCK_DURATION_MS: '10000',
        WORKER_STALLED_INTERVAL_MS: '5000',
        ...options.env,
      },
    });
    return new ChaosStack(redis, s3, stack, receiver);
  }

  get baseUrl(): string {
    return this.stack.baseUrl;
  }

  get headers(): Record<string, string> {
    return this.stack.headers;
  }

  /** Starts an API process again, on the same port, and waits until it listens. */
  async restartApi(): Promise<void> {
    const api = startApi(this.stack.env);
    this.stack.api = api;
    await api.waitForLog(LISTENING, START_TIMEOUT_MS);
  }

  async addWorker(): Promise<ServiceProcess> {
    const worker = await this.stack.addWorker();
    this.everyWorker.push(worker);
    return worker;
  }

  /** Workers still running. */
  liveWorkers(): ServiceProcess[] {
    return this.stack.workers.filter((w) => w.running);
  }

  /**
   * How many times each of these jobs' model ran to completion, from every worker's `job done`
   * lines.
   */
  runs(jobIds: Iterable<string>): Map<string, number> {
    const runs = new Map<string, number>(Array.from(jobIds, (id) => [id, 0]));
    for (const worker of this.everyWorker) {
      for (const line of worker.logs()) {
        const id = String(line.jobId);
        if (line.msg === 'job done' && runs.has(id)) runs.set(id, runs.get(id)! + 1);
      }
    }
    return runs;
  }

  async stop(): Promise<void> {
    // The stack stops the processes it started; an API started again here is this one's to stop.
    await this.stack.api.stop();
    await this.stack.stop().catch(() => undefined);
    await Promise.all([this.redis.close(), this.s3.close(), this.receiver.close()]);
  }
}
