import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import {
  buildColourClassifier,
  buildConstantDetector,
  buildEmbeddingModel,
  type ConstantDetectorOptions,
  constantDetectorOutput,
  embeddingWeights,
  writeModelRepository,
} from '../fixtures/onnx-models.js';

/** NCHW float32 images, each filled per channel with the given RGB value in [0, 1]. */
function solidImages(colours: Array<[number, number, number]>, size: number): Float32Array {
  const plane = size * size;
  const data = new Float32Array(colours.length * 3 * plane);
  colours.forEach((rgb, n) => {
    rgb.forEach((value, c) => {
      data.fill(value, (n * 3 + c) * plane, (n * 3 + c + 1) * plane);
    });
  });
  return data;
}

async function runOne(
  model: Uint8Array,
  input: string,
  data: Float32Array,
  dims: number[],
): Promise<ort.Tensor> {
  const session = await ort.InferenceSession.create(model);
  try {
    const results = await session.run({ [input]: new ort.Tensor('float32', data, dims) });
    const [output] = session.outputNames;
    const tensor = output === undefined ? undefined : results[output];
    if (tensor === undefined) throw new Error('model returned no output');
    return tensor;
  } finally {
    await session.release();
  }
}

describe('buildColourClassifier', () => {
  it('declares pixels [batch, 3, 8, 8] -> probabilities by default', async () => {
    const session = await ort.InferenceSession.create(buildColourClassifier());
    expect(session.inputNames).toEqual(['pixels']);
    expect(session.outputNames).toEqual(['probabilities']);
    expect(session.inputMetadata[0]).toMatchObject({ isTensor: true, shape: ['batch', 3, 8, 8] });
    await session.release();
  });

  it('classifies red, green and blue in one batch with score > 0.99', async () => {
    const size = 4;
    const images = solidImages(
      [
        [1, 0, 0],
        [0, 1, 0],
        [0, 0, 1],
      ],
      size,
    );
    const output = await runOne(buildColourClassifier({ size }), 'pixels', images, [
      3,
      3,
      size,
      size,
    ]);
    expect(output.dims).toEqual([3, 3]);
    const scores = Array.from(output.data as Float32Array);
    for (let n = 0; n < 3; n++) {
      const row = scores.slice(n * 3, n * 3 + 3);
      expect(row.indexOf(Math.max(...row))).toBe(n);
      expect(row[n]).toBeGreaterThan(0.99);
      expect(row.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
    }
  });

  it('accepts a batch of one', async () => {
    const output = await runOne(
      buildColourClassifier(),
      'pixels',
      solidImages([[0, 0, 1]], 8),
      [1, 3, 8, 8],
    );
    expect(output.dims).toEqual([1, 3]);
    expect((output.data as Float32Array)[2]).toBeGreaterThan(0.99);
  });
});

describe('buildConstantDetector', () => {
  const options: ConstantDetectorOptions = {
    inputSize: 16,
    numClasses: 3,
    boxes: [
      { cx: 4, cy: 5, w: 6, h: 7, classIndex: 2, score: 0.9 },
      { cx: 10.5, cy: 8, w: 3, h: 2.25, classIndex: 0, score: 0.6 },
    ],
  };

  it('returns the declared boxes at their anchors whatever the input', async () => {
    const model = buildConstantDetector(options);
    const plane = 3 * 16 * 16;
    const random = Float32Array.from({ length: plane }, () => Math.random() * 1000 - 500);
    const hostile = new Float32Array(plane).fill(Number.NaN);
    hostile[1] = Number.POSITIVE_INFINITY;
    const expected = constantDetectorOutput(options);
    for (const input of [new Float32Array(plane), random, hostile]) {
      const output = await runOne(model, 'images', input, [1, 3, 16, 16]);
      expect(output.dims).toEqual([1, 7, 4]);
      expect(output.data).toEqual(expected);
    }
  });

  it('lays out rows 0..3 as cx, cy, w, h and rows 4.. as class scores, extra anchors zero', () => {
    const anchors = 4;
    const values = constantDetectorOutput(options);
    const at = (row: number, anchor: number) => values[row * anchors + anchor];
    expect([0, 1, 2, 3].map((row) => at(row, 0))).toEqual([4, 5, 6, 7]);
    expect([4, 5, 6].map((row) => at(row, 0))).toEqual([0, 0, Math.fround(0.9)]);
    expect([0, 1, 2, 3].map((row) => at(row, 1))).toEqual([10.5, 8, 3, 2.25]);
    expect([4, 5, 6].map((row) => at(row, 1))).toEqual([Math.fround(0.6), 0, 0]);
    for (const anchor of [2, 3]) {
      expect([0, 1, 2, 3, 4, 5, 6].map((row) => at(row, anchor))).toEqual([0, 0, 0, 0, 0, 0, 0]);
    }
  });

  it('honours an explicit anchor count and names images -> output0', async () => {
    const session = await ort.InferenceSession.create(
      buildConstantDetector({ ...options, anchors: 10 }),
    );
    expect(session.inputNames).toEqual(['images']);
    expect(session.outputNames).toEqual(['output0']);
    expect(session.outputMetadata[0]).toMatchObject({ shape: [1, 7, 10] });
    await session.release();
  });

  it('rejects a class index out of range and too few anchors', () => {
    const box = { cx: 1, cy: 1, w: 1, h: 1, classIndex: 3, score: 1 };
    expect(() => buildConstantDetector({ inputSize: 8, numClasses: 3, boxes: [box] })).toThrow(
      RangeError,
    );
    expect(() => buildConstantDetector({ ...options, anchors: options.boxes.length - 1 })).toThrow(
      RangeError,
    );
  });
});

describe('buildEmbeddingModel', () => {
  it('returns per-channel means times the documented weights for a random batch', async () => {
    const size = 5;
    const dims = 6;
    const batch = 2;
    const plane = size * size;
    const input = Float32Array.from({ length: batch * 3 * plane }, () => Math.random());
    const output = await runOne(buildEmbeddingModel({ size, dims }), 'pixels', input, [
      batch,
      3,
      size,
      size,
    ]);
    expect(output.dims).toEqual([batch, dims]);

    const weights = embeddingWeights(dims);
    const actual = output.data as Float32Array;
    for (let n = 0; n < batch; n++) {
      const means = [0, 1, 2].map((c) => {
        const start = (n * 3 + c) * plane;
        return input.subarray(start, start + plane).reduce((a, b) => a + b, 0) / plane;
      });
      for (let j = 0; j < dims; j++) {
        const expected = means.reduce(
          (sum, mean, c) => sum + mean * (weights[c * dims + j] ?? 0),
          0,
        );
        expect(actual[n * dims + j]).toBeCloseTo(expected, 5);
      }
    }
  });

  it('defaults to [batch, 3, 8, 8] -> [batch, 8]', async () => {
    const session = await ort.InferenceSession.create(buildEmbeddingModel());
    expect(session.inputMetadata[0]).toMatchObject({ shape: ['batch', 3, 8, 8] });
    expect(session.outputMetadata[0]).toMatchObject({ name: 'embedding', shape: ['batch', 8] });
    await session.release();
  });
});

describe('writeModelRepository', () => {
  it('writes root/<name>/<version>/model.onnx files that onnxruntime loads by path', async () => {
    const root = await mkdtemp(join(tmpdir(), 'onnx-repo-'));
    try {
      const colour = buildColourClassifier();
      await writeModelRepository(root, {
        colour: { '1': colour, '2': buildColourClassifier({ size: 4 }) },
        embed: { '1': buildEmbeddingModel() },
      });
      const path = join(root, 'colour', '1', 'model.onnx');
      expect(new Uint8Array(await readFile(path))).toEqual(colour);
      const session = await ort.InferenceSession.create(join(root, 'colour', '2', 'model.onnx'));
      expect(session.inputMetadata[0]).toMatchObject({ shape: ['batch', 3, 4, 4] });
      await session.release();
      await expect(readFile(join(root, 'embed', '1', 'model.onnx'))).resolves.toBeInstanceOf(
        Buffer,
      );
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});
