import { Queue } from 'bullmq';
import { BACKEND_KINDS } from '../../shared/models/model-spec.js';
import { INFERENCE_QUEUES, QueueName } from '../../shared/queues/index.js';
import type { InferenceQueues } from '../../shared/queues/inference-queues.js';
import type { RedisClient } from '../../shared/redis/redis.js';

/**
 * Every queue of the system, by name, for the views over all of them (queue depth metrics, /stats,
 * the dashboard). The list comes from the QueueName enum, so a queue added there shows up here.
 * Inference queues are the producer's own; the others are opened here on the same connection.
 */
export class QueueSet {
  private constructor(
    readonly byName: ReadonlyMap<QueueName, Queue>,
    private readonly opened: Queue[],
  ) {}

  static open(inference: InferenceQueues, redis: RedisClient, prefix: string): QueueSet {
    const byName = new Map<QueueName, Queue>();
    const opened: Queue[] = [];
    for (const name of Object.values(QueueName)) {
      const backend = BACKEND_KINDS.find((b) => INFERENCE_QUEUES[b] === name);
      let queue: Queue;
      if (backend) {
        queue = inference.queue(backend);
      } else {
        queue = new Queue(name, { connection: redis, prefix });
        opened.push(queue);
      }
      byName.set(name, queue);
    }
    return new QueueSet(byName, opened);
  }

  /** Closes the queues this set opened (the inference queues belong to their producer). */
  async close(): Promise<void> {
    await Promise.allSettled(this.opened.map((q) => q.close()));
  }
}
