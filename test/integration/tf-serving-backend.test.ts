import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { failureCode } from '../../shared/errors/index.js';
import { ModelRegistry } from '../../shared/models/registry.js';
import { DynamicBatcher } from '../../workers/backends/dynamic-batcher.js';
import type { InputTensor } from '../../workers/backends/inference-backend.js';
import { TfServingBackend } from '../../workers/backends/tf-serving/tf-serving.backend.js';
import { preprocess } from '../../workers/preprocess/preprocess.js';
import { buildColourClassifier } from '../fixtures/onnx-models.js';
import { hostModel, runModel } from '../fixtures/stand-in-server.js';
import { TfServingStandIn } from '../fixtures/tf-serving-stand-in.js';
import { solidPng } from '../support/inference-stack.js';

const classifier = buildColourClassifier({ size: 8, layout: 'NHWC' });
const input = { width: 8, height: 8, layout: 'NHWC', scale: 1 / 255 };
const labels = ['red', 'green', 'blue'];
const registry = ModelRegistry.fromDocument({
  models: {
    colour: {
      task: 'classification',
      backends: { tensorflow: { label: 'stable' } },
      input,
      labels,
    },
    colour_columnar: {
      task: 'classification',
      backends: { tensorflow: { name: 'colour', request_format: 'columnar' } },
      input,
      labels,
    },
    colour_bytes: {
      task: 'classification',
      backends: { tensorflow: { encoding: 'b64' } },
      input,
      labels,
    },
    wrong_size: {
      task: 'classification',
      backends: { tensorflow: { name: 'colour' } },
      input: { ...input, width: 16, height: 16 },
      labels,
    },
    not_on_server: { task: 'classification', backends: { tensorflow: {} }, input, labels },
  },
});

let standIn: TfServingStandIn;
let backend: TfServingBackend;

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

async function redTensor(): Promise<InputTensor> {
  return preprocess(await solidPng([250, 10, 10]), registry.get('colour')!.input, {
    maxPixels: 1e6,
  });
}

beforeAll(async () => {
  standIn = await TfServingStandIn.start({
    colour: { versions: { '1': classifier, '2': classifier }, labels: { stable: '1' } },
    colour_bytes: { versions: { '3': classifier }, input: 'b64', inputName: 'image_bytes' },
  });
  backend = new TfServingBackend({
    urls: [standIn.url],
    timeoutMs: 2_000,
    connections: 4,
    breaker: { errorThresholdPercent: 50, volumeThreshold: 5, windowMs: 10_000, resetMs: 10_000 },
    probeTimeoutMs: 1_000,
  });
});

afterAll(async () => {
  await backend?.close();
  await standIn?.close();
});

describe('TfServingBackend against the TF Serving stand-in', () => {
  it('loads: ready models with their AVAILABLE versions, the rest unavailable with the reason', async () => {
    const statuses = await backend.load(registry.list());
    // The label pins version 1 for status and prediction.
    expect(statuses.colour).toMatchObject({ state: 'ready', versions: ['1'] });
    expect(statuses.colour_columnar).toMatchObject({ state: 'ready', versions: ['2', '1'] });
    expect(statuses.colour_bytes).toMatchObject({ state: 'ready', versions: ['3'] });
    expect(statuses.wrong_size).toMatchObject({
      state: 'unavailable',
      reason:
        'signature "serving_default": input "pixels" has shape [-1, 8, 8, 3], the registry says [N, 16, 16, 3] (NHWC)',
    });
    expect(statuses.not_on_server).toMatchObject({
      state: 'unavailable',
      reason: expect.stringContaining('TF Serving does not serve "not_on_server"'),
    });
    expect(backend.health().replicas).toEqual([
      expect.objectContaining({ url: standIn.url, healthy: true, circuit: 'closed' }),
    ]);
  });

  it('predicts in row form with the real model answer, through the label', async () => {
    const tensor = await redTensor();
    const answer = await backend.infer({ model: registry.get('colour')!, input: tensor });
    const expected = await runModel(await hostModel(classifier), tensor.data, [...tensor.dims]);
    expect(answer.output.dims).toEqual([1, 3]);
    expect(Array.from(answer.output.data)).toEqual(Array.from(expected.data));
    expect(answer.output.data[0]).toBeGreaterThan(0.99);
    expect(answer.version).toBe('1');
    expect(standIn.server.requests.at(-1)).toBe('POST /v1/models/colour/labels/stable:predict');
  });

  it('predicts in columnar form, and a requested version goes in the path', async () => {
    const tensor = await redTensor();
    const answer = await backend.infer({
      model: registry.get('colour_columnar')!,
      version: '2',
      input: tensor,
    });
    expect(answer.version).toBe('2');
    expect(answer.output.data[0]).toBeGreaterThan(0.99);
    expect(standIn.server.requests.at(-1)).toBe('POST /v1/models/colour/versions/2:predict');
  });

  it('sends encoded images as {"b64": ...} to a signature that takes bytes', async () => {
    const model = registry.get('colour_bytes')!;
    expect(backend.takesEncodedImages(model)).toBe(true);
    const answer = await backend.infer({
      model,
      input: { encoded: [await solidPng([10, 10, 250])] },
    });
    expect(answer.output.data[2]).toBeGreaterThan(0.99);
    expect(answer.version).toBe('3');
  });

  it.each([
    ['row', 'colour', 'POST /v1/models/colour/labels/stable:predict'],
    ['columnar', 'colour_columnar', 'POST /v1/models/colour:predict'],
    ['b64', 'colour_bytes', 'POST /v1/models/colour_bytes:predict'],
  ])(
    'runs a batch of jobs as one %s request, each job with its own answer',
    async (_form, name, path) => {
      const model = registry.get(name)!;
      const batcher = new DynamicBatcher(backend, () => ({ maxSize: 8, maxDelayMs: 1_000 }));
      const images = await Promise.all(
        (
          [
            [250, 10, 10],
            [10, 250, 10],
            [10, 10, 250],
          ] as const
        ).map((rgb) => solidPng([...rgb])),
      );
      const inputs = await Promise.all(
        images.map(async (image) =>
          backend.takesEncodedImages(model)
            ? { encoded: [image] }
            : preprocess(image, model.input, { maxPixels: 1e6 }),
        ),
      );
      const before = standIn.server.requests.length;
      const seats = inputs.map(() => batcher.seat(model.name));

      const answers = await Promise.all(
        seats.map((seat, i) => seat.infer({ model, input: inputs[i]! })),
      );

      expect(standIn.server.requests.slice(before)).toEqual([path]);
      expect(answers.map((a) => a.batchSize)).toEqual([3, 3, 3]);
      answers.forEach((answer, i) => {
        expect(answer.output.dims).toEqual([1, 3]);
        expect(answer.output.data[i]).toBeGreaterThan(0.99);
      });
    },
  );

  it("maps TF Serving's errors: unknown version, rejected input, model not loaded", async () => {
    const tensor = await redTensor();
    const model = registry.get('colour_columnar')!;
    const version = await rejection(backend.infer({ model, version: '9', input: tensor }));
    expect(version).toMatchObject({ code: 'MODEL_VERSION_NOT_FOUND', unrecoverable: true });

    const badInput = { data: new Float32Array(5), dims: [1, 5] };
    const rejected = await rejection(backend.infer({ model, input: badInput }));
    expect(rejected).toMatchObject({ code: 'INFERENCE_FAILED', unrecoverable: true });
    expect(rejected.message).toContain('TF Serving rejected the input');

    const missing = await rejection(
      backend.infer({ model: registry.get('not_on_server')!, input: tensor }),
    );
    expect(missing).toMatchObject({ code: 'MODEL_UNAVAILABLE', unrecoverable: true });
  });

  it('follows the server: down makes everything unavailable and retryable, up brings it back', async () => {
    const tensor = await redTensor();
    const model = registry.get('colour')!;
    await standIn.server.down();
    const down = await rejection(backend.infer({ model, input: tensor }));
    expect(down).toMatchObject({ code: 'BACKEND_UNAVAILABLE', unrecoverable: false });
    expect(down.message).toContain('is unreachable');

    await backend.probe();
    expect(backend.canServe()).toBe(false);
    expect(backend.health().replicas[0]).toMatchObject({ healthy: false });
    expect(backend.health().models.colour).toMatchObject({
      state: 'unavailable',
      reason: expect.stringContaining(
        'no TF Serving server answered: server 1 of 1 is unreachable',
      ),
      // The address is the operator's (the admin's GET /health), not in the reason clients read.
      detail: expect.stringContaining(standIn.url),
    });
    expect(backend.health().models.colour?.reason).not.toContain(new URL(standIn.url).host);

    await standIn.server.up();
    await backend.probe();
    expect(backend.canServe()).toBe(true);
    expect(backend.health().models.colour?.state).toBe('ready');
    expect((await backend.infer({ model, input: tensor })).output.data[0]).toBeGreaterThan(0.99);
  });

  it('a version that stops being AVAILABLE leaves the list at the next probe', async () => {
    standIn.setState('colour', '2', 'UNLOADING');
    await backend.probe();
    expect(backend.health().models.colour_columnar, 'after unloading').toMatchObject({
      versions: ['1'],
    });
    standIn.setState('colour', '2', 'AVAILABLE');
    await backend.probe();
    expect(backend.health().models.colour_columnar?.versions).toEqual(['2', '1']);
  });
});
