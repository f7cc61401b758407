/**
 * The BullMQ floor's worker, run as its own process by the benchmark: a Worker on the inference
 * queue's name, under a prefix of its own, that completes every job at once with a result the size
 * of a classification. What is left is BullMQ's own cost for a job: add, fetch, lock, complete,
 * the completion event. Prints `floor worker ready` when it listens.
 *
 *   node --import tsx bench/bullmq-floor-worker.ts --redis-url redis://127.0.0.1:6379 \
 *     --prefix bench-floor-123 [--concurrency 64]
 */
import { parseArgs } from 'node:util';
import { Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { QueueName } from '../shared/queues/queues.js';

const { values } = parseArgs({
  options: {
    'redis-url': { type: 'string' },
    prefix: { type: 'string' },
    concurrency: { type: 'string', default: '64' },
  },
});
const redisUrl = values['redis-url'];
const prefix = values.prefix;
const concurrency = Number(values.concurrency);
if (!redisUrl || !prefix || !Number.isInteger(concurrency) || concurrency < 1) {
  console.error(
    'usage: bullmq-floor-worker.ts --redis-url <url> --prefix <prefix> [--concurrency N]',
  );
  process.exit(2);
}

/** What the gateway's worker returns for text_orientation, give or take the numbers. */
const RESULT = {
  task: 'classification',
  predictions: [
    { label: '0', index: 0, score: 0.9731 },
    { label: '180', index: 1, score: 0.0269 },
  ],
};

// A blocking connection of its own, as BullMQ requires for workers (maxRetriesPerRequest: null).
const connection = new Redis(redisUrl, { maxRetriesPerRequest: null });
const worker = new Worker(QueueName.InferenceOnnx, async () => RESULT, {
  connection,
  prefix,
  concurrency,
});
await worker.waitUntilReady();

let closing = false;
const shutdown = async () => {
  if (closing) return;
  closing = true;
  await worker.close();
  connection.disconnect();
  process.exit(0);
};
process.once('SIGTERM', () => void shutdown());
process.once('SIGINT', () => void shutdown());

console.log(`floor worker ready: prefix ${prefix}, concurrency ${concurrency}`);
