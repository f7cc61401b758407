import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AiGatewayClient, ApiError, type Job } from '../../client/index.js';
import { QueueName } from '../../shared/queues/index.js';
import { solidPng } from '../fixtures/images.js';
import {
  type BackendModels,
  RED,
  TF_MODELS,
  writeBackendModels,
} from '../support/backend-models.js';
import { eventually } from '../support/inference-stack.js';
import { pool } from '../support/pool.js';
import { sharedServices } from '../support/shared-services.js';
import { openQueue, type Stack, startStack } from '../support/stack.js';

/** Each TF Serving call holds the one model instance this long: the job's service time. */
const SERVICE_MS = 25;
/** FAIR_QUEUE_WINDOW's default: async jobs runnable in the queue at once. */
const WINDOW = 16;
const KEYS = {
  a: 'key-a-0123456789abcdef',
  b: 'key-b-0123456789abcdef',
  heavy: 'key-heavy-0123456789abcdef',
  light: 'key-light-0123456789abcdef',
};

const median = (values: number[]) => [...values].sort((x, y) => x - y)[values.length >> 1]!;
const waitedMs = (job: Job) => Date.parse(job.started_at!) - Date.parse(job.created_at);

/**
 * One TF Serving worker that runs one job at a time (WORKER_CONCURRENCY 1, batching off) against a
 * stand-in whose model takes SERVICE_MS per call: every job costs the same worker time, so a share
 * of jobs is a share of worker time, and a backlog is a real queue.
 */
describe('fair scheduling across API keys', () => {
  const services = sharedServices();
  let models: BackendModels;
  let keysDir: string;
  let stack: Stack;
  let queue: Queue;
  let image: Buffer;
  const client = (key: keyof typeof KEYS) =>
    new AiGatewayClient({ baseUrl: stack.baseUrl, apiKey: KEYS[key] });

  beforeAll(async () => {
    models = await writeBackendModels();
    keysDir = await mkdtemp(path.join(os.tmpdir(), 'ai-gateway-fair-'));
    const keysFile = path.join(keysDir, 'keys.json');
    await writeFile(
      keysFile,
      JSON.stringify({
        keys: [
          { id: 'a', key: KEYS.a },
          { id: 'b', key: KEYS.b },
          { id: 'heavy', key: KEYS.heavy, weight: 3 },
          { id: 'light', key: KEYS.light, weight: 1 },
        ],
      }),
    );
    stack = await startStack(services, {
      workers: 0,
      tensorflowWorkers: 1,
      tfServing: { replicas: 1, models: TF_MODELS },
      readyModels: ['colour_tf'],
      // The stack's own key, which it checks readiness with; the keys file holds the test's keys.
      apiKeys: { probe: 'key-probe-0123456789abcdef' },
      env: {
        ...models.env,
        API_KEYS_FILE: keysFile,
        WORKER_CONCURRENCY: '1',
        BATCH_MAX_SIZE: '1',
      },
    });
    stack.tfServing[0]!.server.modelCompute(SERVICE_MS);
    queue = openQueue(stack, QueueName.InferenceTensorflow);
    image = await solidPng({ r: RED[0], g: RED[1], b: RED[2] });
  }, 180_000);
  afterAll(async () => {
    await queue?.close();
    await stack?.stop();
    await models?.remove();
    if (keysDir) await rm(keysDir, { recursive: true, force: true });
  });

  const submitMany = (key: keyof typeof KEYS, count: number) =>
    pool(Array.from({ length: count }), 16, () => client(key).submit('colour_tf', image));
  const queued = async () => {
    const counts = await queue.getJobCounts('waiting', 'prioritized', 'delayed');
    return Object.values(counts).reduce((sum, n) => sum + n, 0);
  };
  const completed = async () => (await queue.getJobCounts('completed')).completed ?? 0;
  /** Cancels what is left of a backlog (a finished job answers 409) and waits for an empty queue. */
  const cancelAll = async (key: keyof typeof KEYS, jobs: Job[]) => {
    await pool(jobs, 16, (job) =>
      client(key)
        .cancel(job.id)
        .catch((err: unknown) => {
          if (!(err instanceof ApiError && err.code === 'JOB_FINISHED')) throw err;
        }),
    );
    await eventually(async () => ((await queued()) === 0 ? true : undefined), 30_000, 'empty');
  };

  it("serves a key's 20 jobs next to another key's backlog of 1,000, not behind it", async () => {
    const backlog = await submitMany('a', 1000);
    const doneBefore = await completed();
    const submittedAt = Date.now();
    const jobs = await pool(Array.from({ length: 20 }), 20, () =>
      client('b').submit('colour_tf', image),
    );
    const done = await pool(jobs, 20, (job) => client('b').wait(job.id, { timeoutMs: 60_000 }));
    const [stillQueued, doneAfter] = await Promise.all([queued(), completed()]);
    const finishedAt = Date.now();

    expect(done.every((job) => job.status === 'succeeded')).toBe(true);
    // The worker's time per job, measured while B's jobs ran (SERVICE_MS and the worker's own cost).
    const perJobMs = (finishedAt - submittedAt) / (doneAfter - doneBefore);
    const waits = done.map(waitedMs);
    console.log(
      `B: median wait ${median(waits)} ms, max ${Math.max(...waits)} ms; one job ${perJobMs.toFixed(1)} ms; ` +
        `A had ${stillQueued} of 1000 still queued when B's last finished`,
    );
    // Most of A's backlog was still queued when B's last job had finished.
    expect(stillQueued).toBeGreaterThan(500);
    // B waits for the window (WINDOW jobs ahead of its first), then gets every other turn: its median
    // job has ~10 of its own and ~10 of A's turns before it, so about WINDOW + 20 jobs' time (measured:
    // ~41). Tolerance: 2x that, for a busy machine. Behind A's backlog it would have waited
    // `stillQueued` jobs' time and more.
    expect(median(waits)).toBeLessThan(2 * (WINDOW + 20) * perJobMs);
    expect(median(waits)).toBeLessThan((stillQueued / 10) * perJobMs);

    await cancelAll('a', backlog);
  }, 300_000);

  it('gives two busy keys with weights 3 and 1 three quarters and one quarter of the worker', async () => {
    const standIn = stack.tfServing[0]!.server;
    // Both backlogs are in place before the worker moves on, so both keys are busy throughout.
    standIn.hold();
    const [heavy, light] = await Promise.all([submitMany('heavy', 200), submitMany('light', 200)]);
    const doneBefore = await completed();
    standIn.release();
    const measured = 120;
    await eventually(
      async () => ((await completed()) - doneBefore >= WINDOW + 1 + measured ? true : undefined),
      120_000,
      `${measured} jobs done`,
    );
    const read = (key: 'heavy' | 'light', jobs: Job[]) =>
      pool(jobs, 16, async (job) => ({ key, job: await client(key).get(job.id) }));
    const all = [...(await read('heavy', heavy)), ...(await read('light', light))]
      .filter(({ job }) => job.status === 'succeeded')
      .sort((x, y) => Date.parse(x.job.started_at!) - Date.parse(y.job.started_at!));
    // The first window (and the job held in the worker) went in while the backlogs were still being
    // submitted, first come first served: the turns are counted after them.
    const turns = all.slice(WINDOW + 1, WINDOW + 1 + measured);
    expect(turns).toHaveLength(measured);
    const workerMs = (key: 'heavy' | 'light') =>
      turns
        .filter((turn) => turn.key === key)
        .reduce(
          (sum, { job }) => sum + Date.parse(job.completed_at!) - Date.parse(job.started_at!),
          0,
        );
    const count = (key: 'heavy' | 'light') => turns.filter((turn) => turn.key === key).length;
    const timeRatio = workerMs('heavy') / workerMs('light');
    console.log(
      `weights 3:1 over ${measured} jobs: ${count('heavy')}:${count('light')} jobs, ` +
        `worker time ${workerMs('heavy')}:${workerMs('light')} ms (${timeRatio.toFixed(2)}:1)`,
    );
    // Tolerance: the worker time of the two keys is 3:1 within ±0.5 (2.5 to 3.5); the job counts
    // are 3:1 within two jobs (each turn is one job).
    expect(timeRatio).toBeGreaterThan(2.5);
    expect(timeRatio).toBeLessThan(3.5);
    expect(Math.abs(count('heavy') - (3 * measured) / 4)).toBeLessThanOrEqual(2);

    await Promise.all([cancelAll('heavy', heavy), cancelAll('light', light)]);
  }, 300_000);
});
