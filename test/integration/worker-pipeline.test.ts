import { randomBytes, randomUUID } from 'node:crypto';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BackendStatusStore } from '../../shared/backends/backend-status.js';
import type { Config } from '../../shared/config/config.js';
import type { InferenceResult } from '../../shared/jobs/inference-result.js';
import { JobRecords } from '../../shared/jobs/job-records.js';
import type { InferenceParams, JobSpec } from '../../shared/jobs/job-spec.js';
import { ModelRegistry } from '../../shared/models/registry.js';
import { type InferenceJob, InferenceQueues } from '../../shared/queues/inference-queues.js';
import { createRedis, type RedisClient, waitForRedis } from '../../shared/redis/redis.js';
import { imageKey, S3ObjectStore } from '../../shared/storage/index.js';
import type {
  InferenceBackend,
  InferenceRequest,
  InferenceResponse,
} from '../../workers/backends/inference-backend.js';
import { OnnxRuntimeBackend } from '../../workers/backends/onnx-runtime.backend.js';
import { InferenceWorker } from '../../workers/inference-worker.js';
import {
  captureLogger,
  createModelRepository,
  eventually,
  type LogLine,
  registryDocument,
  solidPng,
  testConfig,
  waitForJobState,
} from '../support/inference-stack.js';
import { testSpec } from '../support/job-spec.js';
import { cleanRedisPrefix, uniquePrefix } from '../support/services.js';
import { sharedServices } from '../support/shared-services.js';

const services = sharedServices();
let repository: string;
let prefix: string;
let config: Config;
let registry: ModelRegistry;
let logLines: LogLine[];
let worker: InferenceWorker;
let redis: RedisClient;
let queues: InferenceQueues;
let store: S3ObjectStore;
/** Extra prefixes used by single tests, cleaned at the end. */
const otherPrefixes: string[] = [];

beforeAll(async () => {
  repository = await createModelRepository();
  prefix = uniquePrefix();
  config = testConfig(services, { prefix, bucket: uniquePrefix(), modelRepository: repository });
  registry = ModelRegistry.fromDocument(registryDocument());
  const captured = captureLogger();
  logLines = captured.lines;
  worker = await InferenceWorker.start({
    config,
    registry,
    backend: new OnnxRuntimeBackend({ repository, intraOpThreads: 1 }),
    logger: captured.logger,
  });
  redis = createRedis(config.redis, 'command');
  await waitForRedis(redis, 5_000);
  queues = new InferenceQueues(redis, { prefix, jobs: config.jobs });
  if (config.storage.kind !== 's3') throw new Error('these tests need S3 storage');
  // The worker created the bucket in start().
  store = new S3ObjectStore(config.storage);
});

afterAll(async () => {
  await worker?.close();
  await queues?.close();
  await redis?.quit();
  await store?.close();
  for (const p of [prefix, ...otherPrefixes]) {
    if (p) await cleanRedisPrefix(services.redisUrl, p);
  }
  if (repository) await rm(repository, { recursive: true, force: true });
});

interface Submitted {
  job: InferenceJob;
  state: string;
  requestId: string;
}

/** Stores the image (unless a bare key is given), queues a job for it and waits for the outcome. */
async function run(
  model: string,
  image: Buffer | { key: string },
  params: InferenceParams = {},
  lane: Lane = { prefix, config, queues },
): Promise<Submitted> {
  let key: string;
  if (Buffer.isBuffer(image)) {
    key = imageKey(image);
    await store.put(key, image, 'application/octet-stream');
  } else {
    key = image.key;
  }
  const requestId = `req-${randomUUID()}`;
  const data = testSpec({ model, imageKey: key, params, requestId });
  const jobId = randomUUID();
  await queueJob(lane, jobId, data);
  const state = await waitForJobState(lane.queues.queue('onnx'), jobId);
  const job = (await lane.queues.queue('onnx').getJob(jobId)) as InferenceJob;
  return { job, state, requestId };
}

/** A Redis prefix with its config and queues: the shared worker's, or a test's own. */
interface Lane {
  prefix: string;
  config: Config;
  queues: InferenceQueues;
}

/** A prefix of its own (cleaned at the end) for a test that starts a worker of its own. */
function ownLane(env: Record<string, string> = {}): Lane {
  const own = uniquePrefix();
  otherPrefixes.push(own);
  const ownConfig = testConfig(
    services,
    { prefix: own, bucket: config.storage.bucket, modelRepository: repository },
    env,
  );
  return {
    prefix: own,
    config: ownConfig,
    queues: new InferenceQueues(redis, { prefix: own, jobs: ownConfig.jobs }),
  };
}

/** Queues a job with its record, as the API does: a worker runs no job without one. */
async function queueJob(lane: Lane, jobId: string, data: JobSpec): Promise<void> {
  await new JobRecords(redis, {
    prefix: lane.prefix,
    retentionSeconds: 3600,
    maxPerOwner: 1000,
  }).create({
    id: jobId,
    spec: data,
    backend: 'onnx',
    createdAt: Date.now(),
  });
  await lane.queues.add('onnx', jobId, data);
}

describe('InferenceWorker with ONNX Runtime, real Redis and S3', () => {
  it("publishes every model's status, with the reason for the unavailable ones", async () => {
    const statusStore = new BackendStatusStore(redis, prefix);
    const snapshot = await statusStore.read('onnx');

    expect(snapshot.workers.map((w) => w.workerId)).toEqual([worker.id]);
    expect(snapshot.workers[0]?.pid).toBe(process.pid);
    expect(snapshot.models.colour).toEqual({ state: 'ready', versions: ['1'] });
    expect(snapshot.models.detector).toEqual({ state: 'ready', versions: ['1'] });
    expect(snapshot.models.missing?.state).toBe('unavailable');
    // The path is the operator's (the admin's GET /health), not in the reason clients read.
    expect(snapshot.models.missing?.detail).toContain(
      `put the ONNX file at ${path.join(repository, 'missing', '1', 'model.onnx')}`,
    );
    expect(snapshot.models.missing?.reason).not.toContain(repository);
    // A file ONNX Runtime cannot parse makes that model unavailable; the worker still started.
    expect(snapshot.models.broken?.state).toBe('unavailable');
    expect(snapshot.models.broken?.reason).toContain('ONNX Runtime cannot load');
    expect(snapshot.models.broken?.reason).not.toContain(repository);
    expect(snapshot.models.broken?.detail).toContain(path.join(repository, 'broken'));
    // A TensorFlow-only model is not this backend's business.
    expect(snapshot.models.tf_only).toBeUndefined();
    expect((await statusStore.read('tensorflow')).workers).toEqual([]);

    const unavailable = logLines.filter((l) => l.msg === 'model unavailable').map((l) => l.model);
    expect(unavailable.sort()).toEqual(['broken', 'missing']);
  });

  it('keeps the status fresh with heartbeats', async () => {
    const statusStore = new BackendStatusStore(redis, prefix);
    const first = (await statusStore.read('onnx')).workers[0]?.reportedAt ?? 0;
    const later = await eventually(async () => {
      const reportedAt = (await statusStore.read('onnx')).workers[0]?.reportedAt ?? 0;
      return reportedAt > first ? reportedAt : undefined;
    }, config.worker.heartbeatMs * 5);
    expect(later).toBeGreaterThan(first);
  });

  it.each([
    ['red', [255, 0, 0], 0],
    ['green', [0, 255, 0], 1],
    ['blue', [0, 0, 255], 2],
  ] as const)('classifies a %s image, with timings', async (label, rgb, index) => {
    const { job, state } = await run('colour', await solidPng([...rgb], 20, 12));

    expect(state).toBe('completed');
    const output = job.returnvalue as InferenceResult;
    expect(output.version).toBe('1');
    expect(output.backend).toBe('onnx');
    if (output.result.task !== 'classification') throw new Error('expected a classification');
    expect(output.result.predictions).toHaveLength(3);
    expect(output.result.predictions[0]).toMatchObject({ label, index });
    expect(output.result.predictions[0]?.score).toBeGreaterThan(0.99);
    for (const stage of ['fetch_ms', 'preprocess_ms', 'inference_ms', 'postprocess_ms'] as const) {
      expect(output.timings[stage]).toBeTypeOf('number');
      expect(output.timings[stage]).toBeGreaterThanOrEqual(0);
    }
    expect(job.attemptsMade).toBe(1);
  });

  it('applies the top_k job parameter', async () => {
    const { job } = await run('colour', await solidPng([0, 0, 255]), { topK: 1 });
    const output = job.returnvalue as InferenceResult;
    expect(output.result).toEqual({
      task: 'classification',
      predictions: [{ label: 'blue', index: 2, score: expect.any(Number) }],
    });
  });

  it('maps detector boxes back to the pixels of a wide image (letterbox padding above and below)', async () => {
    // 128x64 into 64x64: scale 0.5, the picture is 64x32 placed 16 px down.
    const { job, state } = await run('detector', await solidPng([90, 90, 90], 128, 64));

    expect(state).toBe('completed');
    const output = job.returnvalue as InferenceResult;
    if (output.result.task !== 'detection') throw new Error('expected a detection');
    // Input box (16, 24)-(48, 40): 16 px of padding off the top, then doubled. The second box lies
    // wholly in the top padding, so nothing of it is in the picture.
    expect(output.result.detections).toEqual([
      {
        label: 'dog',
        index: 1,
        score: expect.closeTo(0.9, 5),
        box: { x: 32, y: 16, width: 64, height: 32 },
      },
    ]);
  });

  it('maps detector boxes back to the pixels of a tall image, and applies the threshold', async () => {
    // 64x128 into 64x64: scale 0.5, the picture is 32x64 placed 16 px right.
    const image = await solidPng([90, 90, 90], 64, 128);
    const { job } = await run('detector', image);
    const output = job.returnvalue as InferenceResult;
    if (output.result.task !== 'detection') throw new Error('expected a detection');
    expect(output.result.detections).toEqual([
      {
        label: 'dog',
        index: 1,
        score: expect.closeTo(0.9, 5),
        box: { x: 0, y: 48, width: 64, height: 32 },
      },
      {
        label: 'cat',
        index: 0,
        score: expect.closeTo(0.8, 5),
        box: { x: 24, y: 8, width: 16, height: 8 },
      },
    ]);

    const strict = await run('detector', image, { threshold: 0.85 });
    const strictOutput = strict.job.returnvalue as InferenceResult;
    if (strictOutput.result.task !== 'detection') throw new Error('expected a detection');
    expect(strictOutput.result.detections.map((d) => d.label)).toEqual(['dog']);
  });

  it("logs 'job done' with the job's requestId and jobId", async () => {
    const { job, requestId } = await run('colour', await solidPng([255, 0, 0]));
    const done = await eventually(
      () => logLines.find((l) => l.msg === 'job done' && l.jobId === job.id),
      2_000,
      "'job done' log line",
    );
    expect(done).toMatchObject({ requestId, jobId: job.id, model: 'colour', version: '1' });
    expect(done.timings).toMatchObject({ inference_ms: expect.any(Number) });
  });

  it('fails a corrupt stored image with INVALID_IMAGE after exactly one attempt', async () => {
    const { job, state, requestId } = await run('colour', randomBytes(4096));

    expect(state).toBe('failed');
    expect(job.failedReason).toMatch(/^INVALID_IMAGE: /);
    // Retries were allowed, but an image that cannot be decoded is not retried.
    expect(job.opts.attempts).toBe(config.jobs.attempts);
    expect(config.jobs.attempts).toBeGreaterThan(1);
    expect(job.attemptsMade).toBe(1);
    const failed = await eventually(
      () => logLines.find((l) => l.msg === 'job attempt failed' && l.jobId === job.id),
      2_000,
      "'job attempt failed' log line",
    );
    expect(failed.requestId).toBe(requestId);
  });

  it('fails a job whose image is not in storage with INVALID_IMAGE', async () => {
    const key = imageKey(randomBytes(32));
    const { job, state } = await run('colour', { key });

    expect(state).toBe('failed');
    expect(job.failedReason).toBe(
      'INVALID_IMAGE: The image cannot be decoded: the uploaded image is no longer in storage',
    );
    expect(job.attemptsMade).toBe(1);
  });

  it('fails jobs for unknown and unloaded models without retrying', async () => {
    const image = await solidPng([0, 255, 0]);
    const unknown = await run('no_such_model', image);
    expect(unknown.state).toBe('failed');
    expect(unknown.job.failedReason).toMatch(/^MODEL_NOT_FOUND: /);
    expect(unknown.job.attemptsMade).toBe(1);

    const missing = await run('missing', image);
    expect(missing.state).toBe('failed');
    expect(missing.job.failedReason).toMatch(/^MODEL_UNAVAILABLE: /);
    expect(missing.job.attemptsMade).toBe(1);
  });

  // Regression: close() called the worker's close() and, on timeout, close(true); BullMQ returns
  // the first close's promise to the second call, so a hung job kept the worker from closing.
  it('hands an active job back to the queue when the shutdown timeout passes', async () => {
    const lane = ownLane({ SHUTDOWN_TIMEOUT_MS: '100' });
    const gated = new GatedBackend(new OnnxRuntimeBackend({ repository }));
    const slowLog = captureLogger();
    const slowWorker = await InferenceWorker.start({
      config: lane.config,
      registry,
      backend: gated,
      logger: slowLog.logger,
    });
    let nextWorker: InferenceWorker | undefined;
    try {
      const image = await solidPng([255, 0, 0]);
      await store.put(imageKey(image), image, 'image/png');
      const jobId = randomUUID();
      await queueJob(
        lane,
        jobId,
        testSpec({
          model: 'colour',
          imageKey: imageKey(image),
          requestId: 'shutdown-test',
          mode: 'async',
        }),
      );
      await gated.entered;

      const started = Date.now();
      await slowWorker.close();
      expect(Date.now() - started).toBeLessThan(5_000);
      expect(await lane.queues.queue('onnx').getJobState(jobId)).toBe('waiting');
      expect(slowLog.lines.find((l) => l.msg.startsWith('shutdown timeout'))).toMatchObject({
        returned: 1,
      });
      // The stuck call ends after the worker is gone; its outcome must not touch the job.
      gated.release();

      nextWorker = await InferenceWorker.start({
        config: lane.config,
        registry,
        backend: new OnnxRuntimeBackend({ repository }),
        logger: captureLogger().logger,
      });
      expect(await waitForJobState(lane.queues.queue('onnx'), jobId)).toBe('completed');
      const job = await lane.queues.queue('onnx').getJob(jobId);
      const output = job?.returnvalue as InferenceResult;
      if (output.result.task !== 'classification') throw new Error('expected a classification');
      expect(output.result.predictions[0]?.label).toBe('red');
    } finally {
      gated.release();
      await slowWorker.close();
      await nextWorker?.close();
      await lane.queues.close();
    }
  });

  it('runs jobs that are ready together as one backend call, each with its own answer', async () => {
    const lane = ownLane();
    const gated = new GatedBackend(new OnnxRuntimeBackend({ repository }));
    const batchingWorker = await InferenceWorker.start({
      config: lane.config,
      registry,
      backend: gated,
      logger: captureLogger().logger,
    });
    try {
      // Twice the default batch (8): one batch fills while the one before it runs.
      const status = await new BackendStatusStore(redis, lane.prefix).read('onnx');
      expect(status.workers[0]?.concurrency).toBe(16);

      const colours = { red: [255, 0, 0], green: [0, 255, 0], blue: [0, 0, 255] } as const;
      const add = async (label: keyof typeof colours) => {
        const image = await solidPng([...colours[label]]);
        await store.put(imageKey(image), image, 'image/png');
        const jobId = randomUUID();
        await queueJob(
          lane,
          jobId,
          testSpec({
            model: 'colour',
            imageKey: imageKey(image),
            requestId: `batch-${label}`,
            mode: 'async',
          }),
        );
        return { jobId, label };
      };
      // The first job holds the model's only call (ONNX Runtime runs one at a time) ...
      const first = await add('red');
      await gated.entered;
      // ... while the others are taken, prepared and wait for the next call together.
      const rest = [];
      for (const label of ['green', 'blue', 'red', 'green', 'blue'] as const) {
        rest.push(await add(label));
      }
      await eventually(
        async () => ((await lane.queues.queue('onnx').getActiveCount()) === 6 ? true : undefined),
        10_000,
        'every job active',
      );
      gated.release();

      const outputs = [];
      for (const { jobId, label } of [first, ...rest]) {
        expect(await waitForJobState(lane.queues.queue('onnx'), jobId)).toBe('completed');
        const job = await lane.queues.queue('onnx').getJob(jobId);
        const output = job?.returnvalue as InferenceResult;
        if (output.result.task !== 'classification') throw new Error('expected a classification');
        expect(output.result.predictions[0]?.label).toBe(label);
        outputs.push(output);
      }
      expect(outputs[0]?.timings.batch_size).toBe(1);
      const sizes = outputs.slice(1).map((o) => o.timings.batch_size ?? 0);
      expect(Math.max(...sizes)).toBeGreaterThan(1);
      // Every job of a batch of n says n: the calls add up to the jobs.
      const calls = sizes.reduce((sum, n) => sum + 1 / n, 0);
      expect(Math.abs(calls - Math.round(calls))).toBeLessThan(1e-9);
      expect(gated.calls).toBe(1 + Math.round(calls));
      for (const output of outputs) {
        expect(output.timings.batch_wait_ms).toBeGreaterThanOrEqual(0);
      }
    } finally {
      gated.release();
      await batchingWorker.close();
      await lane.queues.close();
    }
  });

  it('BATCH_MAX_SIZE=1 runs every job on its own, at the configured concurrency', async () => {
    const lane = ownLane({ BATCH_MAX_SIZE: '1' });
    const unbatched = await InferenceWorker.start({
      config: lane.config,
      registry,
      backend: new OnnxRuntimeBackend({ repository }),
      logger: captureLogger().logger,
    });
    try {
      const status = await new BackendStatusStore(redis, lane.prefix).read('onnx');
      expect(status.workers[0]?.concurrency).toBe(lane.config.worker.concurrency);
      const images = await Promise.all(
        (
          [
            [255, 0, 0],
            [0, 255, 0],
            [0, 0, 255],
            [255, 0, 0],
          ] as const
        ).map((rgb) => solidPng([...rgb])),
      );
      const results = await Promise.all(images.map((image) => run('colour', image, {}, lane)));
      for (const { state, job } of results) {
        expect(state).toBe('completed');
        expect((job.returnvalue as InferenceResult).timings).toMatchObject({
          batch_size: 1,
          batch_wait_ms: 0,
        });
      }
    } finally {
      await unbatched.close();
      await lane.queues.close();
    }
  });

  it('does not run a job whose record is gone: it fails JOB_NOT_FOUND', async () => {
    const image = await solidPng([255, 0, 0]);
    await store.put(imageKey(image), image, 'image/png');
    const jobId = randomUUID();
    // A BullMQ job without its record (deleted by hand, or evicted from Redis).
    await queues.add(
      'onnx',
      jobId,
      testSpec({
        model: 'colour',
        imageKey: imageKey(image),
        requestId: 'no-record',
        mode: 'async',
      }),
    );

    expect(await waitForJobState(queues.queue('onnx'), jobId)).toBe('failed');
    const job = await queues.queue('onnx').getJob(jobId);
    expect(job?.failedReason).toBe(`JOB_NOT_FOUND: Job "${jobId}" does not exist or has expired`);
    expect(job?.attemptsMade).toBe(1);
    expect(logLines.some((l) => l.msg === 'job done' && l.jobId === jobId)).toBe(false);
  });

  // Last: it stops the worker the other tests use.
  it('close() is idempotent and removes the worker from the backend status', async () => {
    const statusStore = new BackendStatusStore(redis, prefix);
    expect((await statusStore.read('onnx')).workers.map((w) => w.workerId)).toContain(worker.id);

    const first = worker.close();
    const second = worker.close();
    expect(second).toBe(first);
    await Promise.all([first, second]);
    await worker.close();

    const after = await statusStore.read('onnx');
    expect(after.workers.map((w) => w.workerId)).not.toContain(worker.id);
    expect(after.models).toEqual({});
    expect(logLines.filter((l) => l.msg === 'worker closed')).toHaveLength(1);
  });
});

/** The real backend behind a gate: `infer` waits until the test releases it. */
class GatedBackend implements InferenceBackend {
  readonly kind = 'onnx' as const;
  /** Backend calls made, each one batch. */
  calls = 0;
  readonly entered: Promise<void>;
  private signalEntered!: () => void;
  private open!: () => void;
  private readonly gate = new Promise<void>((resolve) => {
    this.open = resolve;
  });

  constructor(private readonly inner: OnnxRuntimeBackend) {
    this.entered = new Promise<void>((resolve) => {
      this.signalEntered = resolve;
    });
  }

  load(models: Parameters<InferenceBackend['load']>[0]) {
    return this.inner.load(models);
  }

  /** As the real backend: one call at a time. */
  concurrentCalls(): number {
    return this.inner.concurrentCalls();
  }

  async infer(request: InferenceRequest): Promise<InferenceResponse> {
    this.calls += 1;
    this.signalEntered();
    await this.gate;
    return this.inner.infer(request);
  }

  release(): void {
    this.open();
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
