import { describe, expect, it } from 'vitest';
import {
  decodeYolov8,
  type ImageTransform,
  type OutputTensor,
} from '../../workers/postprocess/index.js';

const CLASSES = 80;
/** Anchors of a 640x640 YOLOv8 model; without labels, N > 4 + C is what tells the layouts apart. */
const ANCHORS = 8400;

/** One anchor of a synthetic output: a box in model-input pixels and its class scores. */
interface Anchor {
  cx: number;
  cy: number;
  w: number;
  h: number;
  scores: Record<number, number>;
}

function anchor(box: [number, number, number, number], scores: Record<number, number>): Anchor {
  const [cx, cy, w, h] = box;
  return { cx, cy, w, h, scores };
}

/** The export's own layout, [1, 4 + C, N]; the anchors not given score zero everywhere. */
function channelMajor(anchors: readonly Anchor[], total = ANCHORS): OutputTensor {
  const features = 4 + CLASSES;
  const data = new Float32Array(features * total);
  anchors.forEach((a, i) => {
    for (const [feature, value] of boxValues(a)) data[feature * total + i] = value;
  });
  return { data, dims: [1, features, total] };
}

/** The transposed layout, [1, N, 4 + C]. */
function transposed(anchors: readonly Anchor[], total = ANCHORS): OutputTensor {
  const features = 4 + CLASSES;
  const data = new Float32Array(features * total);
  anchors.forEach((a, i) => {
    for (const [feature, value] of boxValues(a)) data[i * features + feature] = value;
  });
  return { data, dims: [1, total, features] };
}

function boxValues(a: Anchor): [number, number][] {
  const values: [number, number][] = [
    [0, a.cx],
    [1, a.cy],
    [2, a.w],
    [3, a.h],
  ];
  for (const [cls, score] of Object.entries(a.scores)) values.push([4 + Number(cls), score]);
  return values;
}

const IDENTITY: ImageTransform = {
  originalWidth: 640,
  originalHeight: 640,
  scaleX: 1,
  scaleY: 1,
  padLeft: 0,
  padTop: 0,
};

const defaults = {
  scoreThreshold: 0.25,
  iouThreshold: 0.45,
  maxDetections: 100,
  transform: IDENTITY,
};

describe('decodeYolov8', () => {
  it('decodes a single box to a top-left box with the best class', () => {
    const output = channelMajor([anchor([100, 200, 50, 40], { 2: 0.6, 5: 0.75 })]);
    const [detection, ...rest] = decodeYolov8(output, defaults);
    expect(rest).toEqual([]);
    expect(detection).toEqual({
      label: '5',
      index: 5,
      score: Math.fround(0.75),
      box: { x: 75, y: 180, width: 50, height: 40 },
    });
  });

  it('suppresses an overlapping box of the same class', () => {
    // IoU of the first two: 45 * 50 / (2 * 2500 - 2250) = 0.82.
    const output = channelMajor([
      anchor([105, 100, 50, 50], { 0: 0.8 }),
      anchor([100, 100, 50, 50], { 0: 0.9 }),
      anchor([400, 400, 50, 50], { 0: 0.7 }),
    ]);
    const detections = decodeYolov8(output, defaults);
    expect(detections.map((d) => [d.index, d.box.x, d.box.y])).toEqual([
      [0, 75, 75],
      [0, 375, 375],
    ]);
  });

  it('keeps overlapping boxes of different classes', () => {
    const output = channelMajor([
      anchor([100, 100, 50, 50], { 0: 0.9 }),
      anchor([102, 100, 50, 50], { 16: 0.8 }),
    ]);
    const detections = decodeYolov8(output, defaults);
    expect(detections.map((d) => d.index)).toEqual([0, 16]);
    expect(detections[1]!.box).toEqual({ x: 77, y: 75, width: 50, height: 50 });
  });

  it('suppresses only above the IoU threshold, not at it', () => {
    // The second box is the top half of the first: IoU exactly 0.5.
    const output = channelMajor([
      anchor([50, 50, 100, 100], { 3: 0.9 }),
      anchor([50, 25, 100, 50], { 3: 0.8 }),
    ]);
    expect(decodeYolov8(output, { ...defaults, iouThreshold: 0.5 })).toHaveLength(2);
    expect(decodeYolov8(output, { ...defaults, iouThreshold: 0.49 })).toHaveLength(1);
  });

  it('keeps only scores above the threshold', () => {
    const output = channelMajor([
      anchor([100, 100, 20, 20], { 1: 0.3 }),
      anchor([200, 100, 20, 20], { 1: 0.25 }),
      anchor([300, 100, 20, 20], { 1: 0.2 }),
    ]);
    const detections = decodeYolov8(output, { ...defaults, scoreThreshold: 0.25 });
    expect(detections).toHaveLength(1);
    expect(detections[0]!.score).toBeCloseTo(0.3, 6);
    expect(detections[0]!.box.x).toBe(90);
    expect(decodeYolov8(output, { ...defaults, scoreThreshold: 0.1 })).toHaveLength(3);
  });

  it('returns at most maxDetections, the best ones, sorted by score', () => {
    const scores = [0.5, 0.9, 0.3, 0.7, 0.8];
    const output = channelMajor(
      scores.map((score, i) => anchor([50 + i * 100, 100, 40, 40], { [i]: score })),
    );
    const detections = decodeYolov8(output, { ...defaults, maxDetections: 3 });
    expect(detections.map((d) => d.index)).toEqual([1, 4, 3]);
    const all = decodeYolov8(output, defaults);
    expect(all.map((d) => d.index)).toEqual([1, 4, 3, 0, 2]);
  });

  it('maps letterboxed boxes back to the original image (640x480 in 640x640)', () => {
    const transform: ImageTransform = {
      originalWidth: 640,
      originalHeight: 480,
      scaleX: 1,
      scaleY: 1,
      padLeft: 0,
      padTop: 80,
    };
    const output = channelMajor([anchor([320, 320, 100, 60], { 0: 0.9 })]);
    const [detection] = decodeYolov8(output, { ...defaults, transform });
    expect(detection!.box).toEqual({ x: 270, y: 210, width: 100, height: 60 });
  });

  it('undoes the scale after the padding (1280x960 letterboxed into 640x640)', () => {
    const transform: ImageTransform = {
      originalWidth: 1280,
      originalHeight: 960,
      scaleX: 0.5,
      scaleY: 0.5,
      padLeft: 0,
      padTop: 80,
    };
    const output = channelMajor([anchor([320, 320, 100, 60], { 0: 0.9 })]);
    const [detection] = decodeYolov8(output, { ...defaults, transform });
    expect(detection!.box).toEqual({ x: 540, y: 420, width: 200, height: 120 });
  });

  it('clips boxes at the image edges, including into the padding', () => {
    const transform: ImageTransform = {
      originalWidth: 640,
      originalHeight: 480,
      scaleX: 1,
      scaleY: 1,
      padLeft: 0,
      padTop: 80,
    };
    const output = channelMajor([
      // Runs past the right edge: x 610..650.
      anchor([630, 300, 40, 40], { 0: 0.9 }),
      // Starts in the top padding: model y 70..110 is original y -10..30.
      anchor([100, 90, 40, 40], { 1: 0.8 }),
      // Wholly in the bottom padding: nothing of it is in the image.
      anchor([300, 600, 40, 40], { 2: 0.7 }),
    ]);
    const detections = decodeYolov8(output, { ...defaults, transform });
    expect(detections.map((d) => d.box)).toEqual([
      { x: 610, y: 200, width: 30, height: 40 },
      { x: 80, y: 0, width: 40, height: 30 },
    ]);
  });

  it('rounds box values to two decimals', () => {
    const transform: ImageTransform = { ...IDENTITY, scaleX: 3, scaleY: 3 };
    const output = channelMajor([anchor([150, 150, 100, 100], { 0: 0.9 })]);
    const [detection] = decodeYolov8(output, { ...defaults, transform });
    // 100 / 3 and 200 / 3.
    expect(detection!.box).toEqual({ x: 33.33, y: 33.33, width: 33.34, height: 33.34 });
  });

  it('reads the transposed [1, N, 4 + C] layout when N > 4 + C', () => {
    const anchors = [
      anchor([100, 100, 50, 50], { 0: 0.9 }),
      anchor([105, 100, 50, 50], { 0: 0.8 }),
      anchor([300, 200, 60, 80], { 7: 0.6 }),
    ];
    const expected = decodeYolov8(channelMajor(anchors), defaults);
    expect(expected.map((d) => d.index)).toEqual([0, 7]);
    expect(decodeYolov8(transposed(anchors), defaults)).toEqual(expected);
  });

  it('uses the labels to read a transposed output with fewer anchors than features', () => {
    const labels = Array.from({ length: CLASSES }, (_, i) => `class-${i}`);
    const anchors = [anchor([100, 100, 50, 50], { 9: 0.9 })];
    const detections = decodeYolov8(transposed(anchors, 10), { ...defaults, labels });
    expect(detections).toEqual([
      {
        label: 'class-9',
        index: 9,
        score: Math.fround(0.9),
        box: { x: 75, y: 75, width: 50, height: 50 },
      },
    ]);
  });

  it('rejects labels that fit neither axis, naming the count', () => {
    const output = channelMajor([anchor([100, 100, 50, 50], { 0: 0.9 })]);
    expect(() => decodeYolov8(output, { ...defaults, labels: ['person', 'car'] })).toThrow(
      /2 labels/,
    );
  });

  it('rejects outputs that are not [1, 4 + C, N]', () => {
    const data = new Float32Array(84 * 10);
    expect(() => decodeYolov8({ data, dims: [84, 10] }, defaults)).toThrow(/dims/);
    expect(() => decodeYolov8({ data, dims: [1, 84, 11] }, defaults)).toThrow(/cannot hold/);
  });

  it('returns nothing when no anchor passes the threshold', () => {
    expect(decodeYolov8(channelMajor([]), defaults)).toEqual([]);
  });
});
