import type { Config } from '../config/config.js';
import type { JobSpec } from '../jobs/job-spec.js';
import { openWebhooksQueue, type WebhooksQueue } from '../queues/bullmq-objects.js';
import { JobName } from '../queues/queues.js';
import type { RedisClient } from '../redis/redis.js';
import { type WebhookEvent, webhookMessageId } from './webhook-subscription.js';

/**
 * What a job's webhook message is made from: where it goes (absent, or not asking for the event:
 * no message), the request that made the job, and the owner whose secrets sign it.
 */
export type NotifiedSpec = Pick<JobSpec, 'webhook' | 'requestId' | 'owner'>;

/**
 * The producer side of the `webhooks` queue, used by inference workers (a job started or ended)
 * and by the API (a queued job canceled). One BullMQ job per message, its id the message's
 * `webhook-id`: enqueueing the same event twice is a no-op, so a job retried after a worker crash
 * does not notify twice.
 */
export class WebhookQueue {
  /** The BullMQ queue itself, for views over every queue (depth metrics, the dashboard). */
  readonly queue: WebhooksQueue;

  constructor(redis: RedisClient, prefix: string, config: Pick<Config, 'jobs' | 'webhooks'>) {
    this.queue = openWebhooksQueue({ connection: redis, prefix, config });
  }

  /** Queues the event's message if the job's subscription asks for that event; true when it did. */
  async notify(jobId: string, spec: NotifiedSpec, event: WebhookEvent): Promise<boolean> {
    const { webhook: subscription, requestId, owner } = spec;
    if (!subscription?.events.includes(event)) return false;
    const webhookId = webhookMessageId(jobId, event);
    await this.queue.add(
      JobName.DeliverWebhook,
      {
        jobId,
        event,
        url: subscription.url,
        webhookId,
        requestId,
        owner,
      },
      { jobId: webhookId },
    );
    return true;
  }

  async close(): Promise<void> {
    await this.queue.close();
  }
}
