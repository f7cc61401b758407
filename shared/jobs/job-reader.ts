import type { InferenceQueues } from '../queues/inference-queues.js';
import type { JobRecords } from './job-records.js';
import { describeJob, type JobResource } from './job-resource.js';
import type { WebhookDeliveries } from './webhook-deliveries.js';

/**
 * Reads a job as clients see it: its record, its entry in the queue the record names, its webhook
 * deliveries. The API answers with it and the webhooks worker sends it, so both say the same.
 */
export class JobReader {
  constructor(
    private readonly records: JobRecords,
    private readonly queues: InferenceQueues,
    private readonly deliveries: WebhookDeliveries,
  ) {}

  /** With `owner`, another owner's job is not found. */
  async read(jobId: string, owner?: string): Promise<JobResource | undefined> {
    const record = await this.records.get(jobId);
    if (!record) return undefined;
    if (owner !== undefined && record.spec.owner !== owner) return undefined;
    // Most jobs (every sync one) have no webhook: no deliveries to read.
    const [found, deliveries] = await Promise.all([
      this.queues.get(record.backend, jobId),
      record.spec.webhook ? this.deliveries.list(jobId) : [],
    ]);
    return describeJob({ record, found, deliveries });
  }
}
