import type { Worker } from 'bullmq';
import type { Config } from '../../shared/config/config.js';
import { JobReader } from '../../shared/jobs/job-reader.js';
import { JobRecords } from '../../shared/jobs/job-records.js';
import { WebhookDeliveries } from '../../shared/jobs/webhook-deliveries.js';
import type { Logger } from '../../shared/logging/logger.js';
import type { WebhookMetrics } from '../../shared/metrics/index.js';
import { openWebhooksWorker, WEBHOOK_BACKOFF } from '../../shared/queues/bullmq-objects.js';
import { JobName, QueueName, type WebhookJobData } from '../../shared/queues/index.js';
import { InferenceQueues } from '../../shared/queues/inference-queues.js';
import { createRedis, type RedisClient, waitForRedis } from '../../shared/redis/redis.js';
import { loadSigningSecrets } from '../../shared/webhooks/load-signing-secrets.js';
import { TargetPolicy } from '../../shared/webhooks/target-policy.js';
import { closeRedis, drainWorker } from '../drain-worker.js';
import { dispatchJobs } from '../job-handlers.js';
import { TenantDeliverySlots } from './tenant-delivery-slots.js';
import { createWebhookProcessor, webhookBackoff } from './webhook-processor.js';
import { WebhookSender } from './webhook-sender.js';

export interface WebhookWorkerOptions {
  config: Config;
  logger: Logger;
  /** Delivery counters and durations for this process's /metrics. */
  metrics?: WebhookMetrics;
}

/**
 * A member of the webhooks pool (`workers/main.ts --webhooks`): takes messages from the `webhooks`
 * queue and delivers them, retrying with backoff. `close()` lets attempts in flight finish (each
 * bounded by WEBHOOK_TIMEOUT_MS) and is idempotent.
 */
export class WebhookWorker {
  private closing: Promise<void> | undefined;

  private constructor(
    private readonly options: WebhookWorkerOptions,
    private readonly redis: RedisClient,
    private readonly commands: RedisClient,
    private readonly queues: InferenceQueues,
    private readonly sender: WebhookSender,
    private readonly worker: Worker<WebhookJobData, void>,
  ) {}

  static async start(options: WebhookWorkerOptions): Promise<WebhookWorker> {
    const { config, logger } = options;
    const log = logger.child({ queue: QueueName.Webhooks });
    // BullMQ's blocking connection waits for messages; the rest goes through a bounded one.
    const redis = createRedis(config.redis, 'blocking');
    const commands = createRedis(config.redis, 'command');
    await waitForRedis(commands, config.redis.commandTimeoutMs);
    const signer = await loadSigningSecrets(config, commands, log).catch(async (err: Error) => {
      await Promise.all([closeRedis(commands), closeRedis(redis)]);
      throw err;
    });
    const records = new JobRecords(commands, {
      prefix: config.redis.prefix,
      retentionSeconds: config.jobs.retentionSeconds,
      maxPerOwner: config.jobs.retentionCount,
    });
    const deliveries = new WebhookDeliveries(commands, records);
    const queues = new InferenceQueues(commands, {
      prefix: config.redis.prefix,
      jobs: config.jobs,
    });
    const sender = new WebhookSender({
      policy: new TargetPolicy(config.webhooks),
      timeoutMs: config.webhooks.timeoutMs,
    });
    // An attempt lasts at most the timeout; a lease of three (the job lock's) outlives the
    // attempt's bookkeeping around it, and frees the slot of a worker that died.
    const slots = new TenantDeliverySlots(commands, config.redis.prefix, {
      cap: config.webhooks.tenantConcurrency,
      leaseMs: config.webhooks.timeoutMs * 3,
    });
    const process = createWebhookProcessor({
      reader: new JobReader(records, queues, deliveries),
      deliveries,
      sender,
      signer,
      slots,
      maxDeferMs: config.webhooks.timeoutMs,
      logger: log,
      metrics: options.metrics,
    });
    const handle = dispatchJobs<WebhookJobData, void>(QueueName.Webhooks, {
      [JobName.DeliverWebhook]: process,
    });

    const worker = openWebhooksWorker((job, token) => handle(job, token), {
      connection: redis,
      prefix: config.redis.prefix,
      config,
      backoff: (attemptsMade, type, err) => {
        if (type !== WEBHOOK_BACKOFF) throw new Error(`Unknown backoff type ${type}`);
        return webhookBackoff(
          attemptsMade,
          err,
          config.webhooks.backoffMs,
          config.webhooks.maxDelayMs,
        );
      },
    });
    worker.on('error', (err) => log.error({ err: err.message }, 'worker error'));
    const self = new WebhookWorker(options, redis, commands, queues, sender, worker);
    void worker.run().catch((err: Error) => log.error({ err: err.message }, 'worker stopped'));
    await worker.waitUntilReady();
    log.info(
      {
        concurrency: config.webhooks.concurrency,
        tenantConcurrency: config.webhooks.tenantConcurrency,
        allowPrivate: config.webhooks.allowPrivate,
        allowedHosts: config.webhooks.allowedHosts,
      },
      'webhooks worker started',
    );
    return self;
  }

  /** Idempotent; runs every cleanup step even when one fails. */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    const log = this.options.logger.child({ queue: QueueName.Webhooks });
    // Attempts in flight are bounded by WEBHOOK_TIMEOUT_MS; past the grace period they are left
    // to the stalled-job check.
    await drainWorker(this.worker, {
      timeoutMs: this.options.config.shutdownTimeoutMs,
      logger: log,
    });
    const steps = await Promise.allSettled([this.sender.close(), this.queues.close()]);
    await Promise.all([closeRedis(this.commands), closeRedis(this.redis)]);
    for (const step of steps) {
      if (step.status === 'rejected') log.warn({ err: String(step.reason) }, 'cleanup step failed');
    }
    log.info('webhooks worker closed');
  }
}
