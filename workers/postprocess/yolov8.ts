import type { Box, Detection } from '../../shared/jobs/inference-result.js';
import type { ImageTransform, OutputTensor } from './output-tensor.js';

export interface DecodeYolov8Options {
  /** An anchor is kept only when its best class score is strictly above this. */
  scoreThreshold: number;
  /** A box overlapping a better box of the same class by more than this IoU is dropped. */
  iouThreshold: number;
  maxDetections: number;
  /** One per class, in output order; when given, also settles which layout the output has. */
  labels?: readonly string[];
  /** How preprocessing placed the original image in the model input. */
  transform: ImageTransform;
}

/** Box corners in model-input pixels. */
interface Corners {
  x1: number;
  y1: number;
  x2: number;
  y2: number;
}

interface Candidate extends Corners {
  anchor: number;
  classIndex: number;
  score: number;
}

/** Where the 4 + C features of each of the N anchors sit in the flat buffer. */
interface Layout {
  features: number;
  anchors: number;
  /** Offset of feature `f` of anchor `a`. */
  at: (feature: number, anchor: number) => number;
}

/**
 * Decodes the output of a YOLOv8 detection model exported to ONNX (batch of one) into boxes in the
 * original image's pixels, best first.
 *
 * The export's layout is `[1, 4 + C, N]`: rows 0-3 are cx, cy, w, h in model-input pixels, the next
 * C rows are per-class scores (already sigmoid-ed, no objectness), one column per anchor. Some
 * converters transpose it to `[1, N, 4 + C]`. The layout is decided by:
 * 1. with labels, the axis whose size is 4 + labels.length (both that size: the export's layout);
 * 2. without labels, the smaller axis is the 4 + C one (N is 8400 at 640x640, far above 4 + C);
 *    equal sizes are read as the export's own `[1, 4 + C, N]`.
 *
 * Then: each anchor's best class, scores above `scoreThreshold`, greedy NMS within each class,
 * at most `maxDetections`, boxes mapped back (pad removed, then scale undone), clipped to the image
 * and rounded to 2 decimals. Boxes left with no area after clipping (they lay in the padding) are
 * dropped.
 */
export function decodeYolov8(output: OutputTensor, options: DecodeYolov8Options): Detection[] {
  validateOptions(options);
  const layout = detectLayout(output, options.labels);
  const candidates = collectCandidates(output.data, layout, options.scoreThreshold);

  // Equal scores keep the lower anchor first, so which of two tied boxes survives NMS is fixed.
  candidates.sort((a, b) => b.score - a.score || a.anchor - b.anchor);

  const keptByClass = new Map<number, Candidate[]>();
  const detections: Detection[] = [];
  for (const candidate of candidates) {
    if (detections.length >= options.maxDetections) break;
    const kept = keptByClass.get(candidate.classIndex) ?? [];
    if (kept.some((better) => iou(better, candidate) > options.iouThreshold)) continue;
    const box = toOriginalBox(candidate, options.transform);
    if (box === undefined) continue;
    kept.push(candidate);
    keptByClass.set(candidate.classIndex, kept);
    detections.push({
      label: options.labels?.[candidate.classIndex] ?? String(candidate.classIndex),
      index: candidate.classIndex,
      score: candidate.score,
      box,
    });
  }
  return detections;
}

function validateOptions(options: DecodeYolov8Options): void {
  const { scoreThreshold, iouThreshold, maxDetections, transform } = options;
  if (!(scoreThreshold >= 0 && scoreThreshold <= 1)) {
    throw new RangeError(`scoreThreshold must be between 0 and 1, got ${scoreThreshold}`);
  }
  if (!(iouThreshold >= 0 && iouThreshold <= 1)) {
    throw new RangeError(`iouThreshold must be between 0 and 1, got ${iouThreshold}`);
  }
  if (!Number.isInteger(maxDetections) || maxDetections < 1) {
    throw new RangeError(`maxDetections must be a positive integer, got ${maxDetections}`);
  }
  if (!(transform.scaleX > 0 && transform.scaleY > 0)) {
    throw new RangeError(
      `The image transform's scale must be positive, got ${transform.scaleX} x ${transform.scaleY}`,
    );
  }
  if (!(transform.originalWidth > 0 && transform.originalHeight > 0)) {
    throw new RangeError(
      `The original image size must be positive, got ${transform.originalWidth} x ${transform.originalHeight}`,
    );
  }
}

function detectLayout(output: OutputTensor, labels: readonly string[] | undefined): Layout {
  const { dims, data } = output;
  if (dims.length !== 3 || dims[0] !== 1) {
    throw new Error(`A YOLOv8 output must have dims [1, 4 + C, N], got [${dims.join(', ')}]`);
  }
  const rows = dims[1]!;
  const columns = dims[2]!;
  if (data.length !== rows * columns) {
    throw new Error(
      `A YOLOv8 output with dims [${dims.join(', ')}] cannot hold ${data.length} values`,
    );
  }

  let channelMajor: boolean;
  if (labels !== undefined) {
    const features = 4 + labels.length;
    if (rows !== features && columns !== features) {
      throw new Error(
        `The model has ${labels.length} labels but its output [${dims.join(', ')}] has no axis of 4 + ${labels.length} = ${features}`,
      );
    }
    channelMajor = rows === features;
  } else {
    channelMajor = rows <= columns;
  }

  const features = channelMajor ? rows : columns;
  const anchors = channelMajor ? columns : rows;
  if (features < 5) {
    throw new Error(
      `A YOLOv8 output needs 4 box values and at least one class score per anchor, got [${dims.join(', ')}]`,
    );
  }
  return {
    features,
    anchors,
    at: channelMajor
      ? (feature, anchor) => feature * anchors + anchor
      : (feature, anchor) => anchor * features + feature,
  };
}

function collectCandidates(data: Float32Array, layout: Layout, threshold: number): Candidate[] {
  const { features, anchors, at } = layout;
  const candidates: Candidate[] = [];
  for (let anchor = 0; anchor < anchors; anchor++) {
    let classIndex = 0;
    let score = data[at(4, anchor)]!;
    for (let feature = 5; feature < features; feature++) {
      const value = data[at(feature, anchor)]!;
      if (value > score) {
        score = value;
        classIndex = feature - 4;
      }
    }
    // `>` also rejects NaN scores.
    if (!(score > threshold)) continue;
    const cx = data[at(0, anchor)]!;
    const cy = data[at(1, anchor)]!;
    const w = data[at(2, anchor)]!;
    const h = data[at(3, anchor)]!;
    if (!(w > 0 && h > 0)) continue;
    candidates.push({
      anchor,
      classIndex,
      score,
      x1: cx - w / 2,
      y1: cy - h / 2,
      x2: cx + w / 2,
      y2: cy + h / 2,
    });
  }
  return candidates;
}

function iou(a: Corners, b: Corners): number {
  const overlapWidth = Math.min(a.x2, b.x2) - Math.max(a.x1, b.x1);
  const overlapHeight = Math.min(a.y2, b.y2) - Math.max(a.y1, b.y1);
  if (overlapWidth <= 0 || overlapHeight <= 0) return 0;
  const intersection = overlapWidth * overlapHeight;
  const union = (a.x2 - a.x1) * (a.y2 - a.y1) + (b.x2 - b.x1) * (b.y2 - b.y1) - intersection;
  return intersection / union;
}

/** The box in original pixels, or undefined when nothing of it lies inside the image. */
function toOriginalBox(corners: Corners, transform: ImageTransform): Box | undefined {
  const { originalWidth, originalHeight, scaleX, scaleY, padLeft, padTop } = transform;
  const x1 = round2(clamp((corners.x1 - padLeft) / scaleX, originalWidth));
  const y1 = round2(clamp((corners.y1 - padTop) / scaleY, originalHeight));
  const x2 = round2(clamp((corners.x2 - padLeft) / scaleX, originalWidth));
  const y2 = round2(clamp((corners.y2 - padTop) / scaleY, originalHeight));
  // Width and height come from the rounded corners so that x + width never passes the edge.
  const width = round2(x2 - x1);
  const height = round2(y2 - y1);
  if (width <= 0 || height <= 0) return undefined;
  return { x: x1, y: y1, width, height };
}

function clamp(value: number, max: number): number {
  return Math.min(Math.max(value, 0), max);
}

function round2(value: number): number {
  return Math.round(value * 100) / 100;
}
