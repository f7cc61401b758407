import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jobFailure } from '../../shared/errors/index.js';
import { ModelRegistry } from '../../shared/models/registry.js';
import {
  type BatchLimits,
  batchLimitsOf,
  DynamicBatcher,
} from '../../workers/backends/dynamic-batcher.js';
import type {
  InferenceBackend,
  InferenceRequest,
  InputTensor,
} from '../../workers/backends/inference-backend.js';
import { OnnxRuntimeBackend } from '../../workers/backends/onnx-runtime.backend.js';
import { buildColourClassifier, writeModelRepository } from '../fixtures/onnx-models.js';

const SIZE = 4;
/** Long enough that a test would time out if a batch waited for it. */
const FOREVER_MS = 600_000;

let repository: string;
let onnx: OnnxRuntimeBackend;
let registry: ModelRegistry;

beforeAll(async () => {
  repository = await mkdtemp(join(tmpdir(), 'batcher-'));
  const colour = buildColourClassifier({ size: SIZE });
  await writeModelRepository(repository, {
    colour: { '1': colour, '2': colour },
    // The same graph exported with a batch dimension fixed at 1.
    single: { '1': buildColourClassifier({ size: SIZE, batch: 1 }) },
  });
  const entry = {
    task: 'classification',
    backends: { onnx: {} },
    input: { width: SIZE, height: SIZE },
    labels: ['red', 'green', 'blue'],
  };
  registry = ModelRegistry.fromDocument({
    models: { colour: entry, single: entry, tuned: { ...entry, batching: { max_size: 3 } } },
  });
  onnx = new OnnxRuntimeBackend({ repository });
  await onnx.load(registry.list());
});

afterAll(async () => {
  await onnx?.close();
  if (repository) await rm(repository, { recursive: true, force: true });
});

const model = (name = 'colour') => registry.get(name)!;

/** A solid colour as the model's input, scaled to [0, 1]. */
function solid(rgb: readonly [number, number, number]): InputTensor {
  const plane = SIZE * SIZE;
  const data = new Float32Array(3 * plane);
  for (const [channel, value] of rgb.entries()) {
    data.fill(value, channel * plane, (channel + 1) * plane);
  }
  return { data, dims: [1, 3, SIZE, SIZE] };
}
const RED = solid([1, 0, 0]);
const GREEN = solid([0, 1, 0]);
const BLUE = solid([0, 0, 1]);

/** The real ONNX backend, with every call it receives written down. */
function recorded(backend: InferenceBackend = onnx) {
  const calls: InferenceRequest[] = [];
  const wrapped: InferenceBackend = {
    kind: backend.kind,
    load: (models) => backend.load(models),
    close: async () => {},
    infer(request) {
      calls.push(request);
      return backend.infer(request);
    },
  };
  return { backend: wrapped, calls, sizes: () => calls.map((c) => batchOf(c)) };
}

function batchOf({ input }: InferenceRequest): number {
  return 'encoded' in input ? input.encoded.length : input.dims[0]!;
}

const limits =
  (maxSize: number, maxDelayMs = FOREVER_MS): (() => BatchLimits) =>
  () => ({ maxSize, maxDelayMs });

const argmax = (data: Float32Array) => data.indexOf(Math.max(...data));

describe('DynamicBatcher', () => {
  it('sends a lone job at once: no other job of its model is on its way', async () => {
    const { backend, sizes } = recorded();
    const batcher = new DynamicBatcher(backend, limits(8));
    const seat = batcher.seat('colour');

    const answer = await seat.infer({ model: model(), input: RED });

    expect(sizes()).toEqual([1]);
    expect(answer.batchSize).toBe(1);
    expect(answer.waitedMs).toBeLessThan(50);
    expect(argmax(answer.output.data as Float32Array)).toBe(0);
  });

  it('waits for the jobs that hold a seat, then runs them as one call, each with its own output', async () => {
    const { backend, sizes } = recorded();
    const batcher = new DynamicBatcher(backend, limits(8));
    const seats = [batcher.seat('colour'), batcher.seat('colour'), batcher.seat('colour')];

    const answers = await Promise.all(
      [RED, GREEN, BLUE].map((input, i) => seats[i]!.infer({ model: model(), input })),
    );

    expect(sizes()).toEqual([3]);
    expect(answers.map((a) => argmax(a.output.data as Float32Array))).toEqual([0, 1, 2]);
    for (const answer of answers) {
      expect(answer.batchSize).toBe(3);
      expect(answer.output.dims).toEqual([1, 3]);
      expect(answer.version).toBe('2');
    }
  });

  it('fills the next batch while the backend has no free call, instead of queueing calls', async () => {
    const { backend, sizes } = recorded();
    let open!: () => void;
    const gate = new Promise<void>((resolve) => {
      open = resolve;
    });
    const oneAtATime: InferenceBackend = {
      ...backend,
      concurrentCalls: () => 1,
      infer: async (request) => {
        await gate;
        return backend.infer(request);
      },
    };
    const batcher = new DynamicBatcher(oneAtATime, limits(8));

    const first = batcher.seat('colour').infer({ model: model(), input: RED });
    const seats = [batcher.seat('colour'), batcher.seat('colour'), batcher.seat('colour')];
    const rest = [RED, GREEN, BLUE].map((input, i) => seats[i]!.infer({ model: model(), input }));
    // Every later job has arrived, but the only call is busy with the first.
    expect(sizes()).toEqual([]);
    open();

    expect((await first).batchSize).toBe(1);
    expect((await Promise.all(rest)).map((a) => a.batchSize)).toEqual([3, 3, 3]);
    expect(sizes()).toEqual([1, 3]);
  });

  it('calls at once for a model that does not batch, even while every call is busy', async () => {
    const { backend, sizes } = recorded();
    let open!: () => void;
    const gate = new Promise<void>((resolve) => {
      open = resolve;
    });
    const oneAtATime: InferenceBackend = {
      ...backend,
      concurrentCalls: () => 1,
      infer: async (request) => {
        const answer = backend.infer(request);
        if (request.model.name === 'colour') await gate;
        return answer;
      },
    };
    const batcher = new DynamicBatcher(oneAtATime, (m) =>
      m.name === 'single' ? { maxSize: 1, maxDelayMs: FOREVER_MS } : limits(8)(),
    );

    const busy = batcher.seat('colour').infer({ model: model(), input: RED });
    const alone = await batcher.seat('single').infer({ model: model('single'), input: GREEN });

    expect(alone).toMatchObject({ batchSize: 1, waitedMs: 0 });
    expect(argmax(alone.output.data as Float32Array)).toBe(1);
    expect(sizes()).toEqual([1, 1]);
    open();
    expect((await busy).batchSize).toBe(1);
  });

  it('sends a full batch without waiting for the rest', async () => {
    const { backend, sizes } = recorded();
    const batcher = new DynamicBatcher(backend, limits(2));
    const seats = Array.from({ length: 5 }, () => batcher.seat('colour'));

    const answers = await Promise.all(seats.map((s) => s.infer({ model: model(), input: RED })));

    expect(sizes()).toEqual([2, 2, 1]);
    expect(answers.map((a) => a.batchSize)).toEqual([2, 2, 2, 2, 1]);
  });

  it('stops waiting for a job that released its seat without arriving', async () => {
    const { backend, sizes } = recorded();
    const batcher = new DynamicBatcher(backend, limits(8));
    const arriving = batcher.seat('colour');
    const failing = batcher.seat('colour');

    const answer = arriving.infer({ model: model(), input: RED });
    failing.release();

    expect((await answer).batchSize).toBe(1);
    expect(sizes()).toEqual([1]);
    // Releasing again, or after arriving, changes nothing.
    failing.release();
    arriving.release();
  });

  it('waits at most the delay for a job still being prepared', async () => {
    const { backend, sizes } = recorded();
    const batcher = new DynamicBatcher(backend, limits(8, 30));
    batcher.seat('colour'); // never arrives, never leaves
    const seat = batcher.seat('colour');

    const answer = await seat.infer({ model: model(), input: RED });

    expect(sizes()).toEqual([1]);
    expect(answer.waitedMs).toBeGreaterThanOrEqual(29);
  });

  it('does not wait for jobs of another model', async () => {
    const { backend, sizes } = recorded();
    const batcher = new DynamicBatcher(backend, limits(8));
    batcher.seat('single'); // still on its way

    const answer = await batcher.seat('colour').infer({ model: model(), input: RED });

    expect(answer.batchSize).toBe(1);
    expect(sizes()).toEqual([1]);
  });

  it('keeps requested versions and input shapes in separate calls', async () => {
    const { backend, calls } = recorded();
    const batcher = new DynamicBatcher(backend, limits(8));
    const seats = Array.from({ length: 4 }, () => batcher.seat('colour'));
    const wide: InputTensor = {
      data: new Float32Array(3 * SIZE * SIZE * 2),
      dims: [1, 3, SIZE, 8],
    };

    const answers = await Promise.allSettled([
      seats[0]!.infer({ model: model(), version: '1', input: RED }),
      seats[1]!.infer({ model: model(), version: '1', input: GREEN }),
      seats[2]!.infer({ model: model(), input: BLUE }),
      seats[3]!.infer({ model: model(), input: wide }),
    ]);

    const grouped = calls.map((c) => `${c.version ?? 'newest'}:${batchOf(c)}`).sort();
    expect(grouped).toEqual(['1:2', 'newest:1', 'newest:1']);
    expect(answers[0]).toMatchObject({ status: 'fulfilled', value: { version: '1' } });
    expect(answers[2]).toMatchObject({ status: 'fulfilled', value: { version: '2' } });
  });

  it('fails every job of the call with a backend error a retry may fix', async () => {
    let calls = 0;
    const down: InferenceBackend = {
      ...onnx,
      kind: 'onnx',
      load: async () => ({}),
      close: async () => {},
      infer: async () => {
        calls += 1;
        throw jobFailure('BACKEND_UNAVAILABLE', 'connection refused');
      },
    };
    const batcher = new DynamicBatcher(down, limits(8));
    const seats = [batcher.seat('colour'), batcher.seat('colour')];

    const results = await Promise.allSettled(
      seats.map((s) => s.infer({ model: model(), input: RED })),
    );

    expect(calls).toBe(1);
    for (const result of results) {
      expect(result.status).toBe('rejected');
      expect(String((result as PromiseRejectedResult).reason)).toContain('BACKEND_UNAVAILABLE');
    }
  });

  it('fails only the job whose input the backend refuses', async () => {
    // A server that rejects any request holding a NaN, as TF Serving rejects a malformed tensor.
    const strict = recorded({
      ...onnx,
      kind: 'onnx',
      load: async () => ({}),
      close: async () => {},
      infer: (request) =>
        (request.input as InputTensor).data.some(Number.isNaN)
          ? Promise.reject(jobFailure('INFERENCE_FAILED', 'input holds NaN'))
          : onnx.infer(request),
    });
    const batcher = new DynamicBatcher(strict.backend, limits(8));
    const seats = [batcher.seat('colour'), batcher.seat('colour'), batcher.seat('colour')];
    const bad = solid([Number.NaN, 0, 0]);

    const results = await Promise.allSettled(
      [RED, bad, BLUE].map((input, i) => seats[i]!.infer({ model: model(), input })),
    );

    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect(String((results[1] as PromiseRejectedResult).reason)).toContain('input holds NaN');
    // One call for the batch, then one per job to find the input at fault.
    expect(strict.sizes()).toEqual([3, 1, 1, 1]);
  });

  it('runs the jobs one by one when the model refuses the batch', async () => {
    const { backend, sizes } = recorded();
    const batcher = new DynamicBatcher(backend, limits(8));
    const seats = [batcher.seat('single'), batcher.seat('single')];

    // The fixed-batch model refuses a batch of two; each input then runs on its own.
    const answers = await Promise.all(
      [RED, GREEN].map((input, i) => seats[i]!.infer({ model: model('single'), input })),
    );

    expect(answers.map((a) => argmax(a.output.data as Float32Array))).toEqual([0, 1]);
    expect(sizes()).toEqual([2, 1, 1]);
  });
});

describe('batchLimitsOf', () => {
  it("takes the registry's limits, with defaults for a model that names none", () => {
    expect(batchLimitsOf(model('colour'), {}, onnx)).toEqual({ maxSize: 8, maxDelayMs: 5 });
    expect(batchLimitsOf(model('tuned'), {}, onnx)).toEqual({ maxSize: 3, maxDelayMs: 5 });
  });

  it('lets the configuration override every model, BATCH_MAX_SIZE=1 turning batching off', () => {
    expect(batchLimitsOf(model('tuned'), { maxSize: 1, maxDelayMs: 0 }, onnx)).toEqual({
      maxSize: 1,
      maxDelayMs: 0,
    });
  });

  it('never asks a model for more than its fixed batch dimension takes', () => {
    expect(onnx.maxBatchSize(model('single'))).toBe(1);
    expect(onnx.maxBatchSize(model('colour'))).toBeUndefined();
    expect(batchLimitsOf(model('single'), { maxSize: 16 }, onnx).maxSize).toBe(1);
  });
});
