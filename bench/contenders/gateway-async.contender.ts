import { setTimeout as sleep } from 'node:timers/promises';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { QueueName } from '../../shared/queues/queues.js';
import type { GatewayStack } from '../gateway-stack.js';
import { BENCH_MODEL } from '../in-process-pipeline.js';
import { MultipartClient } from '../multipart-client.js';
import type { BurstContender, ContenderContext } from './contender.js';

/** Job states that still hold work for the worker. */
const PENDING = ['waiting', 'active', 'delayed', 'prioritized', 'waiting-children', 'paused'];

/**
 * The gateway's acceptance of async jobs: `POST /jobs` answers 202 once the job is queued, while
 * the worker runs the jobs as they come. `settle()` waits until the worker has drained the queue,
 * so the next phase does not share the machine with this one's leftovers.
 */
export function gatewayAsync(
  stack: GatewayStack,
  ctx: ContenderContext,
  options: { drainTimeoutMs?: number } = {},
): BurstContender {
  const client = new MultipartClient(stack.baseUrl, stack.headers);
  const connection = new Redis(ctx.config.redis.url, { maxRetriesPerRequest: null });
  ctx.teardown.add('async: queue connection', () => void connection.disconnect());
  const queue = new Queue(QueueName.InferenceOnnx, { connection, prefix: stack.prefix });
  ctx.teardown.add('async: queue', () => queue.close());
  const drainTimeoutMs = options.drainTimeoutMs ?? 600_000;

  return {
    name: 'async',
    load: 'burst',
    pids: { server: stack.api.pid, worker: stack.worker.pid },
    usesRedis: true,
    send: (image) =>
      client.post('/jobs', image, (status) => status === 202, { model: BENCH_MODEL }),
    async settle() {
      const until = Date.now() + drainTimeoutMs;
      while (Date.now() < until) {
        const counts = await queue.getJobCounts(...(PENDING as Parameters<Queue['getJobCounts']>));
        if (Object.values(counts).every((n) => n === 0)) return;
        await sleep(250);
      }
      throw new Error(`the gateway's queue did not drain within ${drainTimeoutMs} ms`);
    },
  };
}
