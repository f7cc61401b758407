import { describe, expect, it } from 'vitest';
import { classify, type OutputTensor } from '../../workers/postprocess/index.js';

function tensor(values: readonly number[], dims: readonly number[] = [1, values.length]) {
  return { data: Float32Array.from(values), dims } satisfies OutputTensor;
}

describe('classify', () => {
  it('applies softmax to match hand-computed probabilities', () => {
    const result = classify(tensor([1, 2, 3]), { activation: 'softmax', topK: 3 });
    // exp(-2), exp(-1), exp(0) over their sum 1.5032146...
    expect(result.map((c) => c.index)).toEqual([2, 1, 0]);
    expect(result[0]!.score).toBeCloseTo(0.6652409558, 9);
    expect(result[1]!.score).toBeCloseTo(0.2447284711, 9);
    expect(result[2]!.score).toBeCloseTo(0.0900305732, 9);
  });

  it('keeps softmax finite for large logits', () => {
    const result = classify(tensor([1000, 1001]), { activation: 'softmax', topK: 2 });
    expect(result.map((c) => c.index)).toEqual([1, 0]);
    expect(result[0]!.score).toBeCloseTo(0.7310585786, 9);
    expect(result[1]!.score).toBeCloseTo(0.2689414214, 9);

    const negative = classify(tensor([-1000, -1001]), { activation: 'softmax', topK: 2 });
    expect(negative[0]!.score).toBeCloseTo(0.7310585786, 9);
  });

  it('softmax scores over all classes sum to one', () => {
    const result = classify(tensor([0.5, -3, 7, 2, 2]), { activation: 'softmax', topK: 5 });
    expect(result.reduce((sum, c) => sum + c.score, 0)).toBeCloseTo(1, 12);
  });

  it('applies sigmoid per class, without overflow at the extremes', () => {
    const result = classify(tensor([0, 2, -2, 1000, -1000]), { activation: 'sigmoid', topK: 5 });
    const byIndex = new Map(result.map((c) => [c.index, c.score]));
    expect(byIndex.get(0)).toBe(0.5);
    expect(byIndex.get(1)).toBeCloseTo(0.880797078, 9);
    expect(byIndex.get(2)).toBeCloseTo(0.119202922, 9);
    expect(byIndex.get(3)).toBe(1);
    expect(byIndex.get(4)).toBe(0);
  });

  it('passes scores through unchanged with activation none', () => {
    const result = classify(tensor([0.125, 0.5, 0.25]), { activation: 'none', topK: 3 });
    expect(result).toEqual([
      { label: '1', index: 1, score: 0.5 },
      { label: '2', index: 2, score: 0.25 },
      { label: '0', index: 0, score: 0.125 },
    ]);
  });

  it('returns the top k by score, equal scores by lower index first', () => {
    const scores = [0.1, 0.5, 0.5, 0.9, 0.5, 0.05];
    const result = classify(tensor(scores), { activation: 'none', topK: 4 });
    expect(result.map((c) => c.index)).toEqual([3, 1, 2, 4]);

    const two = classify(tensor(scores), { activation: 'none', topK: 2 });
    expect(two.map((c) => c.index)).toEqual([3, 1]);
  });

  it('returns every class when topK exceeds the class count', () => {
    const result = classify(tensor([3, 1, 2]), { activation: 'none', topK: 10 });
    expect(result.map((c) => c.index)).toEqual([0, 2, 1]);
  });

  it('agrees with a full sort on 1000 classes', () => {
    // A fixed pseudo-random sequence with repeats, so ties are exercised too.
    const logits = Array.from({ length: 1000 }, (_, i) => ((i * 7919) % 997) / 50);
    const expected = logits
      .map((value, index) => ({ value, index }))
      .sort((a, b) => b.value - a.value || a.index - b.index)
      .slice(0, 20)
      .map((entry) => entry.index);
    const result = classify(tensor(logits), { activation: 'softmax', topK: 20 });
    expect(result.map((c) => c.index)).toEqual(expected);
    for (let i = 1; i < result.length; i++) {
      expect(result[i]!.score).toBeLessThanOrEqual(result[i - 1]!.score);
    }
  });

  it('names classes from the labels, by index when there are none', () => {
    const labels = ['cat', 'dog', 'bird'];
    const named = classify(tensor([0.2, 0.7, 0.1]), { activation: 'none', topK: 2, labels });
    expect(named.map((c) => c.label)).toEqual(['dog', 'cat']);
    const unnamed = classify(tensor([0.2, 0.7, 0.1]), { activation: 'none', topK: 2 });
    expect(unnamed.map((c) => c.label)).toEqual(['1', '0']);
  });

  it('rejects labels whose count differs from the class count, naming both', () => {
    expect(() =>
      classify(tensor([1, 2, 3, 4]), { activation: 'softmax', topK: 1, labels: ['a', 'b', 'c'] }),
    ).toThrow(/3 labels.*4 classes/);
  });

  it('accepts [C] and [1, C] outputs alike', () => {
    const values = [0.3, 0.1, 0.6];
    const flat = classify(tensor(values, [3]), { activation: 'softmax', topK: 3 });
    const batched = classify(tensor(values, [1, 3]), { activation: 'softmax', topK: 3 });
    expect(flat).toEqual(batched);
    expect(flat.map((c) => c.index)).toEqual([2, 0, 1]);
  });

  it('rejects other shapes and a buffer that does not match the dims', () => {
    expect(() => classify(tensor([1, 2, 3, 4], [2, 2]), { activation: 'none', topK: 1 })).toThrow(
      /\[C\] or \[1, C\], got \[2, 2\]/,
    );
    expect(() => classify(tensor([1, 2, 3], [1, 4]), { activation: 'none', topK: 1 })).toThrow(
      /cannot hold 3 values/,
    );
  });

  it('rejects a topK below one', () => {
    expect(() => classify(tensor([1, 2]), { activation: 'none', topK: 0 })).toThrow(RangeError);
  });
});
