import type { JobError } from '../errors/index.js';
import type { RedisClient } from '../redis/redis.js';
import { defineCommands } from '../redis/redis-commands.js';
import type { WebhookEvent } from '../webhooks/webhook-subscription.js';
import type { JobRecords } from './job-records.js';

/** One delivery attempt of one webhook message, as the job resource shows it. */
export interface WebhookDelivery {
  webhook_id: string;
  event: WebhookEvent;
  /** 1 for the first attempt of this message. */
  attempt: number;
  at: string;
  duration_ms: number;
  /** The receiver's HTTP status, or null when no answer came (the error says why). */
  status_code: number | null;
  /** Why the attempt failed, as a catalogue code and its words (never an address). */
  error: JobError | null;
  /** `retrying`: another attempt is scheduled; `failed`: no more will be made. */
  outcome: 'delivered' | 'retrying' | 'failed';
}

/** Every webhook delivery attempt of a job, in order, beside its record (`<record key>:deliveries`). */
export class WebhookDeliveries {
  /**
   * @param maxPerJob - attempts kept per job (the oldest are dropped first)
   */
  constructor(
    private readonly redis: RedisClient,
    private readonly records: JobRecords,
    private readonly maxPerJob = 100,
  ) {
    if (maxPerJob < 1) throw new RangeError('maxPerJob must be at least 1');
    defineCommands(redis);
  }

  private key(jobId: string): string {
    return this.records.deliveriesKey(jobId);
  }

  /** Lives and dies with the job's record: nothing is recorded once the record is gone. */
  async add(jobId: string, delivery: WebhookDelivery): Promise<void> {
    await this.redis.webhookDeliveryAppend(
      this.records.key(jobId),
      this.key(jobId),
      JSON.stringify(delivery),
      this.maxPerJob,
    );
  }

  async list(jobId: string): Promise<WebhookDelivery[]> {
    const entries = await this.redis.lrange(this.key(jobId), 0, -1);
    return entries.map((entry) => JSON.parse(entry) as WebhookDelivery);
  }

  async delete(jobId: string): Promise<void> {
    await this.redis.del(this.key(jobId));
  }
}
