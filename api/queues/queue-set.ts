import type { Queue } from 'bullmq';
import { BACKEND_KINDS } from '../../shared/models/model-spec.js';
import { INFERENCE_QUEUES, QueueName } from '../../shared/queues/index.js';
import type { InferenceQueues } from '../../shared/queues/inference-queues.js';
import type { WebhookQueue } from '../../shared/webhooks/webhook-queue.js';

/**
 * Every queue of the system, by name, for the views over all of them (queue depth metrics, /stats,
 * the dashboard). The list comes from the QueueName enum, so a queue added there must be given an
 * owner here. The set opens nothing: each queue is its producer's (the inference queues',
 * the webhook queue's), opened once and closed by it.
 */
export class QueueSet {
  readonly byName: ReadonlyMap<QueueName, Queue>;

  constructor(inference: InferenceQueues, webhooks: WebhookQueue) {
    const byName = new Map<QueueName, Queue>();
    for (const name of Object.values(QueueName)) {
      const backend = BACKEND_KINDS.find((b) => INFERENCE_QUEUES[b] === name);
      if (backend) byName.set(name, inference.queue(backend));
      else if (name === QueueName.Webhooks) byName.set(name, webhooks.queue);
      else throw new Error(`queue ${name} has no producer in the API`);
    }
    this.byName = byName;
  }
}
