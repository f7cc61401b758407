import { rm } from 'node:fs/promises';
import { UnrecoverableError } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ModelRegistry } from '../../shared/models/registry.js';
import type { InputTensor } from '../../workers/backends/inference-backend.js';
import { OnnxRuntimeBackend } from '../../workers/backends/onnx-runtime.backend.js';
import { OnnxRuntimeThreadBackend } from '../../workers/backends/onnx-runtime-thread.js';
import { createModelRepository, registryDocument } from '../support/inference-stack.js';

let repository: string;
const registry = ModelRegistry.fromDocument(registryDocument());
const colour = registry.get('colour')!;

/** One 8x8 NCHW image of one colour (values in [0, 1]). */
function solid(rgb: [number, number, number]): InputTensor {
  const plane = 64;
  const data = new Float32Array(3 * plane);
  for (const [c, value] of rgb.entries()) data.fill(value, c * plane, (c + 1) * plane);
  return { data, dims: [1, 3, 8, 8] };
}

beforeAll(async () => {
  repository = await createModelRepository();
});
afterAll(async () => {
  if (repository) await rm(repository, { recursive: true, force: true });
});

describe('ONNX Runtime in its own thread', () => {
  it('loads and answers as the in-process backend does, statuses and outputs alike', async () => {
    const threaded = new OnnxRuntimeThreadBackend({ repository });
    const inProcess = new OnnxRuntimeBackend({ repository });
    try {
      const models = registry.servedBy('onnx');
      const [statuses, expected] = await Promise.all([
        threaded.load(models),
        inProcess.load(models),
      ]);
      expect(statuses).toEqual(expected);
      expect(statuses.colour?.state).toBe('ready');
      expect(statuses.broken?.state).toBe('unavailable');
      expect(threaded.health().models).toEqual(statuses);

      for (const rgb of [
        [1, 0, 0],
        [0, 0.9, 0.1],
      ] as [number, number, number][]) {
        const [got, want] = await Promise.all([
          threaded.infer({ model: colour, input: solid(rgb) }),
          inProcess.infer({ model: colour, input: solid(rgb) }),
        ]);
        expect(got.version).toBe(want.version);
        expect(got.output.dims).toEqual(want.output.dims);
        expect(Array.from(got.output.data)).toEqual(Array.from(want.output.data));
      }
    } finally {
      await Promise.all([threaded.close(), inProcess.close()]);
    }
  });

  it('keeps a failure final when no retry can help, and says which', async () => {
    const threaded = new OnnxRuntimeThreadBackend({ repository });
    try {
      await threaded.load(registry.servedBy('onnx'));
      const wrongShape = { data: new Float32Array(5), dims: [1, 5] };
      const err = await threaded.infer({ model: colour, input: wrongShape }).catch((e) => e);
      expect(err).toBeInstanceOf(UnrecoverableError);
      expect(err.message).toMatch(/^INFERENCE_FAILED: ONNX Runtime: /);
      const missing = await threaded
        .infer({ model: colour, version: '9', input: solid([1, 0, 0]) })
        .catch((e) => e);
      expect(missing.message).toMatch(/^MODEL_VERSION_NOT_FOUND: /);
    } finally {
      await threaded.close();
    }
  });

  it('fails calls with a retryable BACKEND_UNAVAILABLE once its thread has stopped', async () => {
    const threaded = new OnnxRuntimeThreadBackend({ repository });
    await threaded.load(registry.servedBy('onnx'));
    await threaded.close();
    const err = await threaded.infer({ model: colour, input: solid([1, 0, 0]) }).catch((e) => e);
    expect(err).not.toBeInstanceOf(UnrecoverableError);
    expect(err.message).toMatch(/^BACKEND_UNAVAILABLE: /);
  });
});
