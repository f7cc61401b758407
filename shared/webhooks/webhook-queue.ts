import type { Config } from '../config/config.js';
import { ANONYMOUS_OWNER } from '../jobs/job-records.js';
import { openWebhooksQueue, type WebhooksQueue } from '../queues/bullmq-objects.js';
import { JobName } from '../queues/queues.js';
import type { RedisClient } from '../redis/redis.js';
import {
  type WebhookEvent,
  type WebhookSubscription,
  webhookMessageId,
} from './webhook-subscription.js';

/** What a job's webhook message is made from. */
export interface NotifiedJob {
  id: string;
  /** Absent, or not asking for the event: no message. */
  webhook?: WebhookSubscription;
  requestId: string;
  /** The job's owner, whose secrets sign the message; absent: `anonymous`. */
  owner?: string;
}

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
  async notify(job: NotifiedJob, event: WebhookEvent): Promise<boolean> {
    const { id: jobId, webhook: subscription, requestId, owner } = job;
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
        owner: owner ?? ANONYMOUS_OWNER,
      },
      { jobId: webhookId },
    );
    return true;
  }

  async close(): Promise<void> {
    await this.queue.close();
  }
}
