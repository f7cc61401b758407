import type { Classification } from '../../shared/jobs/inference-result.js';
import type { OutputTensor } from './output-tensor.js';

export type Activation = 'softmax' | 'sigmoid' | 'none';

export interface ClassifyOptions {
  /** `none` when the model ends in its own softmax. */
  activation: Activation;
  /** How many classes to return; more than the model has returns them all. */
  topK: number;
  /** One per class, in output order; a class without a label is named by its index. */
  labels?: readonly string[];
}

/**
 * The `topK` best classes of a classifier output with a batch of one (dims `[C]` or `[1, C]`),
 * best first; equal scores keep the lower class index first.
 */
export function classify(output: OutputTensor, options: ClassifyOptions): Classification[] {
  const classes = classCount(output);
  const { labels, topK } = options;
  if (labels !== undefined && labels.length !== classes) {
    throw new Error(`The model has ${labels.length} labels but its output has ${classes} classes`);
  }
  if (!Number.isInteger(topK) || topK < 1) {
    throw new RangeError(`topK must be a positive integer, got ${topK}`);
  }

  const scores = activate(output.data, options.activation);
  return selectTop(scores, Math.min(topK, classes)).map((index) => ({
    label: labels?.[index] ?? String(index),
    index,
    score: scores[index]!,
  }));
}

function classCount(output: OutputTensor): number {
  const { dims, data } = output;
  const classes =
    dims.length === 1 ? dims[0] : dims.length === 2 && dims[0] === 1 ? dims[1] : undefined;
  if (classes === undefined) {
    throw new Error(
      `A classification output must have dims [C] or [1, C], got [${dims.join(', ')}]`,
    );
  }
  if (classes < 1 || data.length !== classes) {
    throw new Error(
      `A classification output with dims [${dims.join(', ')}] cannot hold ${data.length} values`,
    );
  }
  return classes;
}

function activate(logits: Float32Array, activation: Activation): Float64Array {
  const scores = Float64Array.from(logits);
  switch (activation) {
    case 'softmax': {
      // Subtracting the largest logit keeps exp() from overflowing and leaves the result unchanged.
      let max = Number.NEGATIVE_INFINITY;
      for (const value of scores) if (value > max) max = value;
      let sum = 0;
      for (let i = 0; i < scores.length; i++) {
        scores[i] = Math.exp(scores[i]! - max);
        sum += scores[i]!;
      }
      for (let i = 0; i < scores.length; i++) scores[i] = scores[i]! / sum;
      return scores;
    }
    case 'sigmoid':
      for (let i = 0; i < scores.length; i++) scores[i] = sigmoid(scores[i]!);
      return scores;
    case 'none':
      return scores;
  }
}

function sigmoid(x: number): number {
  // Two forms so that exp() only ever sees a non-positive argument and cannot overflow.
  if (x >= 0) return 1 / (1 + Math.exp(-x));
  const e = Math.exp(x);
  return e / (1 + e);
}

/**
 * Indices of the `k` highest scores, best first. A bounded insertion into a sorted buffer: the
 * usual k is a handful out of ~1000 classes, where most scores are rejected by one comparison.
 */
function selectTop(scores: Float64Array, k: number): number[] {
  const top: number[] = [];
  for (let index = 0; index < scores.length; index++) {
    const score = rankValue(scores[index]!);
    // Scanning in index order, a later equal score never displaces an earlier one.
    if (top.length === k && score <= rankValue(scores[top[k - 1]!]!)) continue;
    let position = Math.min(top.length, k - 1);
    while (position > 0 && score > rankValue(scores[top[position - 1]!]!)) position--;
    if (top.length === k) top.pop();
    top.splice(position, 0, index);
  }
  return top;
}

/** A NaN score (a broken model output) ranks below every real one instead of poisoning order. */
function rankValue(score: number): number {
  return Number.isNaN(score) ? Number.NEGATIVE_INFINITY : score;
}
