import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { failureCode } from '../../shared/errors/index.js';
import { ModelRegistry } from '../../shared/models/registry.js';
import { DynamicBatcher } from '../../workers/backends/dynamic-batcher.js';
import { OipV2Backend } from '../../workers/backends/oip-v2/oip-v2.backend.js';
import { preprocess } from '../../workers/preprocess/preprocess.js';
import { OipV2StandIn } from '../fixtures/oip-v2-stand-in.js';
import { buildColourClassifier } from '../fixtures/onnx-models.js';
import { solidPng } from '../support/inference-stack.js';

const classifier = buildColourClassifier({ size: 8 });
const input = { width: 8, height: 8, layout: 'NCHW', scale: 1 / 255 };
const labels = ['red', 'green', 'blue'];
const registry = ModelRegistry.fromDocument({
  models: {
    colour: { task: 'classification', backends: { onnx: {} }, input, labels },
    colour_v1: {
      task: 'classification',
      backends: { onnx: { name: 'colour', version: '1' } },
      input,
      labels,
    },
    nhwc_in_registry: {
      task: 'classification',
      backends: { onnx: { name: 'colour' } },
      input: { ...input, layout: 'NHWC' },
      labels,
    },
    absent: { task: 'classification', backends: { onnx: {} }, input, labels },
  },
});

let replicas: OipV2StandIn[];
let backend: OipV2Backend;

/** The job failure a call rejects with: its catalogue code, and whether BullMQ may retry it. */
async function rejection(
  call: Promise<unknown>,
): Promise<{ code: string; unrecoverable: boolean; message: string }> {
  try {
    await call;
  } catch (err) {
    const e = err as Error;
    return {
      code: failureCode(e.message) ?? e.message,
      unrecoverable: e.name === 'UnrecoverableError',
      message: e.message,
    };
  }
  throw new Error('expected the call to fail');
}

beforeAll(async () => {
  replicas = await Promise.all([
    OipV2StandIn.start({ colour: { '1': classifier, '2': classifier } }),
    OipV2StandIn.start({ colour: { '1': classifier, '2': classifier } }),
  ]);
  backend = new OipV2Backend(options());
});

/** The backend's options: both stand-ins, two calls in flight on each for a batching model. */
function options(): ConstructorParameters<typeof OipV2Backend>[0] {
  return {
    urls: replicas.map((r) => r.url),
    timeoutMs: 2_000,
    connections: 4,
    batchCalls: 2,
    breaker: { errorThresholdPercent: 50, volumeThreshold: 5, windowMs: 10_000, resetMs: 10_000 },
    probeTimeoutMs: 1_000,
  };
}

afterAll(async () => {
  await backend?.close();
  await Promise.all((replicas ?? []).map((r) => r.close()));
});

describe('OipV2Backend against two Open Inference Protocol stand-ins', () => {
  it('loads: ready models with versions from metadata, the rest unavailable with the reason', async () => {
    const statuses = await backend.load(registry.list());
    expect(statuses.colour).toMatchObject({ state: 'ready', versions: ['2', '1'] });
    expect(statuses.colour_v1).toMatchObject({ state: 'ready', versions: ['1'] });
    expect(statuses.nhwc_in_registry).toMatchObject({
      state: 'unavailable',
      reason: 'input "pixels" has shape [-1, 3, 8, 8], the registry says [N, 8, 8, 3] (NHWC)',
    });
    expect(statuses.absent).toMatchObject({
      state: 'unavailable',
      reason: 'the server has no ready model "absent"',
    });
  });

  it('infers with binary FP32 tensors, spread over both servers, with the version that answered', async () => {
    const model = registry.get('colour')!;
    const tensor = await preprocess(await solidPng([10, 240, 10]), model.input, { maxPixels: 1e6 });
    const answers = await Promise.all(
      Array.from({ length: 6 }, () => backend.infer({ model, input: tensor })),
    );
    for (const answer of answers) {
      expect(answer.version).toBe('2');
      expect(answer.output.dims).toEqual([1, 3]);
      expect(answer.output.data[1]).toBeGreaterThan(0.99);
    }
    expect(replicas.map((r) => r.server.counts.inference)).toEqual([3, 3]);
    // Both servers list binary_tensor_data at GET /v2: no JSON text either way.
    expect(replicas.map((r) => r.binaryRequests)).toEqual([3, 3]);

    const pinned = await backend.infer({ model: registry.get('colour_v1')!, input: tensor });
    expect(pinned.version).toBe('1');
  });

  it('runs a batch of jobs as one request along the batch dimension, each with its own answer', async () => {
    const model = registry.get('colour')!;
    const batcher = new DynamicBatcher(backend, () => ({ maxSize: 8, maxDelayMs: 1_000 }));
    const inputs = await Promise.all(
      (
        [
          [250, 10, 10],
          [10, 250, 10],
          [10, 10, 250],
        ] as const
      ).map(async (rgb) => preprocess(await solidPng([...rgb]), model.input, { maxPixels: 1e6 })),
    );
    const before = replicas.map((r) => r.server.counts.inference);
    const seats = inputs.map(() => batcher.seat(model.name));

    const answers = await Promise.all(
      seats.map((seat, i) => seat.infer({ model, input: inputs[i]! })),
    );

    const calls = replicas.map((r, i) => r.server.counts.inference - before[i]!);
    expect(calls.reduce((a, b) => a + b)).toBe(1);
    answers.forEach((answer, i) => {
      expect(answer.batchSize).toBe(3);
      expect(answer.version).toBe('2');
      expect(answer.output.dims).toEqual([1, 3]);
      expect(answer.output.data[i]).toBeGreaterThan(0.99);
    });
  });

  it('sends JSON tensors while a server does not list the binary tensor extension', async () => {
    const model = registry.get('colour')!;
    const tensor = await preprocess(await solidPng([240, 10, 10]), model.input, { maxPixels: 1e6 });
    replicas[1]!.binaryTensors = false;
    await backend.probe();
    const binaryBefore = replicas.map((r) => r.binaryRequests);
    try {
      const answers = await Promise.all(
        Array.from({ length: 4 }, () => backend.infer({ model, input: tensor })),
      );
      for (const answer of answers) expect(answer.output.data[0]).toBeGreaterThan(0.99);
      expect(replicas.map((r) => r.binaryRequests)).toEqual(binaryBefore);
    } finally {
      replicas[1]!.binaryTensors = true;
      await backend.probe();
    }
    await backend.infer({ model, input: tensor });
    const binaryAfter = replicas.map((r) => r.binaryRequests);
    expect(binaryAfter.reduce((a, b) => a + b)).toBe(binaryBefore.reduce((a, b) => a + b) + 1);
  });

  it('lets a batching model have two calls in flight per server; the jobs after them fill one batch', async () => {
    const model = registry.get('colour')!;
    expect(backend.concurrentCalls()).toBe(4);
    const batcher = new DynamicBatcher(backend, () => ({ maxSize: 8, maxDelayMs: 1_000 }));
    const tensor = await preprocess(await solidPng([10, 10, 240]), model.input, { maxPixels: 1e6 });
    const before = replicas.map((r) => r.server.counts.inference);
    const calls = () => replicas.reduce((n, r, i) => n + r.server.counts.inference - before[i]!, 0);
    for (const replica of replicas) replica.server.hold();
    try {
      // Each alone when it arrives: four calls, two on each server, every one held there.
      const lone = Array.from({ length: 4 }, () =>
        batcher.seat(model.name).infer({ model, input: tensor }),
      );
      const seats = Array.from({ length: 3 }, () => batcher.seat(model.name));
      const later = seats.map((seat) => seat.infer({ model, input: tensor }));
      await vi.waitFor(() => expect(calls()).toBe(4));
      expect(replicas.map((r) => r.server.counts.inference - before[replicas.indexOf(r)]!)).toEqual(
        [2, 2],
      );
      for (const replica of replicas) replica.server.release();

      expect((await Promise.all(lone)).map((a) => a.batchSize)).toEqual([1, 1, 1, 1]);
      const answers = await Promise.all(later);
      expect(answers.map((a) => a.batchSize)).toEqual([3, 3, 3]);
      for (const answer of answers) expect(answer.output.data[2]).toBeGreaterThan(0.99);
      expect(calls()).toBe(5);
    } finally {
      for (const replica of replicas) replica.server.release();
    }
  });

  it('sends the jobs of a batch the server refuses again one by one: only the refused one fails', async () => {
    const model = registry.get('colour')!;
    // One server, so that which calls it refuses does not depend on the balancing.
    const server = replicas[0]!.server;
    const single = new OipV2Backend({ ...options(), urls: [replicas[0]!.url] });
    await single.load(registry.list());
    const batcher = new DynamicBatcher(single, () => ({ maxSize: 8, maxDelayMs: 1_000 }));
    const tensor = await preprocess(await solidPng([240, 10, 10]), model.input, { maxPixels: 1e6 });
    const before = server.counts.inference;
    // The batch's call, then the first of the calls that each carry one of its jobs.
    server.failInference(400, 2, 'input rejected');
    try {
      const seats = Array.from({ length: 3 }, () => batcher.seat(model.name));
      const results = await Promise.allSettled(
        seats.map((seat) => seat.infer({ model, input: tensor })),
      );

      expect(results.map((r) => r.status)).toEqual(['rejected', 'fulfilled', 'fulfilled']);
      expect(String((results[0] as PromiseRejectedResult).reason)).toContain('INFERENCE_FAILED');
      for (const result of results.slice(1)) {
        expect((result as PromiseFulfilledResult<{ batchSize: number }>).value.batchSize).toBe(1);
      }
      expect(server.counts.inference - before).toBe(4);
    } finally {
      server.heal();
      await single.close();
    }
  });

  it('counts only the servers that can take a call, one call each unless told otherwise', async () => {
    const { batchCalls: _, ...defaults } = options();
    const plain = new OipV2Backend(defaults);
    try {
      expect(plain.concurrentCalls()).toBe(2);
    } finally {
      await plain.close();
    }
    replicas[0]!.ready = false;
    await backend.probe();
    try {
      expect(backend.concurrentCalls()).toBe(2);
    } finally {
      replicas[0]!.ready = true;
      await backend.probe();
    }
    expect(backend.concurrentCalls()).toBe(4);
  });

  it('maps errors: unknown version 404, bad tensor 400', async () => {
    const model = registry.get('colour')!;
    const tensor = { data: new Float32Array(3 * 64), dims: [1, 3, 8, 8] };
    expect(await rejection(backend.infer({ model, version: '7', input: tensor }))).toMatchObject({
      code: 'MODEL_VERSION_NOT_FOUND',
      unrecoverable: true,
    });
    const bad = { data: new Float32Array(5), dims: [1, 5] };
    expect(await rejection(backend.infer({ model, input: bad }))).toMatchObject({
      code: 'INFERENCE_FAILED',
      unrecoverable: true,
    });
  });

  it('a server that says it is not ready is taken out until it is', async () => {
    replicas[0]!.ready = false;
    await backend.probe();
    expect(backend.health().replicas.map((r) => r.healthy)).toEqual([false, true]);
    expect(backend.health().replicas[0]!.error).toContain('not ready');
    expect(backend.health().models.colour?.state).toBe('ready');
    expect(backend.canServe()).toBe(true);
    replicas[0]!.ready = true;
    await backend.probe();
    expect(backend.health().replicas.map((r) => r.healthy)).toEqual([true, true]);
  });
});
