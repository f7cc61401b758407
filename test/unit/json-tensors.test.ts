import { describe, expect, it } from 'vitest';
import {
  flatJson,
  flattenNested,
  formatFloat32,
  nestedJson,
  parseLenientJson,
  rowsJson,
} from '../../workers/backends/remote/json-tensors.js';

describe('formatFloat32', () => {
  it('writes the shortest text that reads back as the same float32', () => {
    const values = Float32Array.from([
      1 / 255,
      0.1,
      -0.485 / 0.229,
      3.4e38,
      1e-8,
      123456.789,
      -2.5,
    ]);
    for (const value of values) {
      const text = formatFloat32(value);
      expect(Math.fround(Number(text)), text).toBe(value);
      expect(text.length, text).toBeLessThanOrEqual(15);
    }
    expect(formatFloat32(Math.fround(1 / 255))).toBe('0.003921569');
    expect(formatFloat32(Math.fround(0.5))).toBe('0.5');
  });

  it('writes integers plainly and non-finite values as the tokens TF Serving reads', () => {
    expect(formatFloat32(0)).toBe('0');
    expect(formatFloat32(-3)).toBe('-3');
    expect(formatFloat32(Number.NaN)).toBe('NaN');
    expect(formatFloat32(Number.POSITIVE_INFINITY)).toBe('Infinity');
    expect(formatFloat32(Number.NEGATIVE_INFINITY)).toBe('-Infinity');
  });
});

describe('tensors as JSON', () => {
  const data = Float32Array.from([1, 2, 3, 4, 5, 6, 0.25, 8, 9, 10, 11, 12]);

  it('nests row-major values by the shape', () => {
    expect(JSON.parse(nestedJson(data, [2, 3, 2]).toString())).toEqual([
      [
        [1, 2],
        [3, 4],
        [5, 6],
      ],
      [
        [0.25, 8],
        [9, 10],
        [11, 12],
      ],
    ]);
  });

  it('writes one nested list per item of the first dimension', () => {
    const rows = rowsJson(data, [2, 6]);
    expect(rows.map((r) => JSON.parse(r.toString()))).toEqual([
      [1, 2, 3, 4, 5, 6],
      [0.25, 8, 9, 10, 11, 12],
    ]);
  });

  it('fits any shape and the longest values (lists of one, sixteen-character numbers)', () => {
    const long = Float32Array.from([-999999986991104, -1.1754944e-38, 3.4028235e38]);
    const text = nestedJson(long, [3, 1, 1, 1]).toString();
    expect(JSON.parse(text)).toEqual([
      [[[-999999986991104]]],
      [[[-1.1754944e-38]]],
      [[[3.4028235e38]]],
    ]);
    expect(JSON.parse(nestedJson(Float32Array.from([5]), []).toString())).toBe(5);
  });

  it('writes tensors with more distinct values than it remembers, and image-like ones, exactly', () => {
    // 5,000 random values overflow the table of formatted values; an image's 256 levels a channel
    // fill only part of it. Either way every value reads back as the same float32.
    const random = Float32Array.from({ length: 5000 }, () => (Math.random() - 0.5) * 1e4);
    const image = Float32Array.from({ length: 4 * 5 * 3 * 2 }, (_, i) => ((i * 37) % 256) / 255);
    for (const [values, dims] of [
      [random, [10, 25, 20]],
      [image, [2, 4, 5, 3]],
    ] as const) {
      const parsed = flattenNested(JSON.parse(nestedJson(values, dims).toString()));
      expect(parsed.dims).toEqual(dims);
      expect(parsed.data).toEqual(values);
    }
  });

  it('writes a flat list', () => {
    expect(JSON.parse(flatJson(data).toString())).toEqual(Array.from(data));
  });

  it('reads nested lists back into values and shape', () => {
    const read = flattenNested(JSON.parse(nestedJson(data, [3, 2, 2]).toString()));
    expect(read.dims).toEqual([3, 2, 2]);
    expect(Array.from(read.data)).toEqual(Array.from(data));
    expect(flattenNested(7)).toEqual({ data: Float32Array.from([7]), dims: [] });
  });

  it('refuses ragged lists and values that are not numbers', () => {
    expect(() => flattenNested([[1, 2], [3]])).toThrow(/ragged/);
    expect(() => flattenNested([[1, 'a']])).toThrow(/expected a number/);
  });

  it('reads NaN and Infinity tokens (outside strings) as NaN', () => {
    const parsed = parseLenientJson('{"predictions": [[1, NaN, -Infinity]], "note": "NaN stays"}');
    expect(parsed).toEqual({ predictions: [[1, null, null]], note: 'NaN stays' });
    const { data: read } = flattenNested((parsed as { predictions: unknown }).predictions);
    expect(Number.isNaN(read[1])).toBe(true);
  });
});
