/**
 * Tensors as JSON text, written and read without building nested arrays of boxed numbers: a
 * 224x224x3 input is 150k floats, and both TF Serving's REST API and the Open Inference Protocol's
 * JSON form carry them as decimal text.
 */

/** Distinct values remembered while writing one tensor (preprocessed images have < 1000). */
const FORMAT_CACHE_LIMIT = 65_536;

/**
 * The shortest decimal text that reads back as the same float32, e.g. `0.003921569` rather than
 * float64's `0.003921568859368563`. Non-finite values use the NaN/Infinity tokens TF Serving
 * accepts.
 */
export function formatFloat32(value: number): string {
  if (Number.isInteger(value) && Math.abs(value) < 1e15) return String(value);
  if (!Number.isFinite(value))
    return Number.isNaN(value) ? 'NaN' : value > 0 ? 'Infinity' : '-Infinity';
  for (let precision = 6; precision < 9; precision++) {
    const text = value.toPrecision(precision);
    if (Math.fround(Number(text)) === value) return trimZeros(text);
  }
  return trimZeros(value.toPrecision(9));
}

function trimZeros(text: string): string {
  const [mantissa = '', exponent] = text.split('e');
  const trimmed = mantissa.includes('.') ? mantissa.replace(/\.?0+$/, '') : mantissa;
  return exponent === undefined ? trimmed : `${trimmed}e${exponent}`;
}

/** Writes float32 values as decimal text, remembering the text of each distinct value. */
class FloatWriter {
  private readonly cache = new Map<number, string>();

  format(value: number): string {
    let text = this.cache.get(value);
    if (text === undefined) {
      text = formatFloat32(value);
      if (this.cache.size < FORMAT_CACHE_LIMIT) this.cache.set(value, text);
    }
    return text;
  }

  /** `data[offset .. offset + product(dims))` as nested lists, row-major. */
  nested(data: Float32Array, dims: readonly number[], offset = 0): string {
    const parts: string[] = [];
    const strides = dims.map((_, depth) => dims.slice(depth + 1).reduce((a, b) => a * b, 1));
    const write = (depth: number, start: number): void => {
      if (depth === dims.length) {
        parts.push(this.format(data[start]!));
        return;
      }
      const count = dims[depth]!;
      const stride = strides[depth]!;
      parts.push('[');
      for (let i = 0; i < count; i++) {
        if (i > 0) parts.push(',');
        write(depth + 1, start + i * stride);
      }
      parts.push(']');
    };
    write(0, offset);
    return parts.join('');
  }

  /** The values as one flat list. */
  flat(data: Float32Array): string {
    const parts = new Array<string>(data.length);
    for (let i = 0; i < data.length; i++) parts[i] = this.format(data[i]!);
    return `[${parts.join(',')}]`;
  }
}

/** The tensor as nested JSON lists (TF Serving's natural form), e.g. `[[1,2],[3,4]]`. */
export function nestedJson(data: Float32Array, dims: readonly number[]): string {
  return new FloatWriter().nested(data, dims);
}

/**
 * One nested JSON list per item of the first dimension (TF Serving's row form: one instance per
 * batch item).
 */
export function rowsJson(data: Float32Array, dims: readonly number[]): string[] {
  const [batch = 0, ...rest] = dims;
  const size = rest.reduce((a, b) => a * b, 1);
  const writer = new FloatWriter();
  return Array.from({ length: batch }, (_, i) => writer.nested(data, rest, i * size));
}

/** The tensor as one flat JSON list (the Open Inference Protocol's `data`). */
export function flatJson(data: Float32Array): string {
  return new FloatWriter().flat(data);
}

/**
 * Reads a JSON document that may hold NaN/Infinity tokens (TF Serving writes them for non-finite
 * floats, which JSON proper does not have): such tokens outside strings become null, read as NaN.
 */
export function parseLenientJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    if (!/NaN|Infinity/.test(text)) throw err;
    return JSON.parse(
      text.replace(/"(?:[^"\\]|\\.)*"|-?\b(?:NaN|Infinity)\b/g, (match) =>
        match.startsWith('"') ? match : 'null',
      ),
    );
  }
}

/**
 * A nested list of numbers (or a single number) as a flat float32 buffer and its shape. Throws
 * when the lists are ragged or hold something other than numbers (null reads as NaN).
 */
export function flattenNested(value: unknown): { data: Float32Array; dims: number[] } {
  const dims: number[] = [];
  for (let probe = value; Array.isArray(probe); probe = probe[0]) dims.push(probe.length);
  const data = new Float32Array(dims.reduce((a, b) => a * b, 1));
  let offset = 0;
  const walk = (node: unknown, depth: number): void => {
    if (depth === dims.length) {
      if (typeof node === 'number') data[offset++] = node;
      else if (node === null) data[offset++] = Number.NaN;
      else throw new TypeError(`expected a number, found ${JSON.stringify(node)?.slice(0, 40)}`);
      return;
    }
    if (!Array.isArray(node) || node.length !== dims[depth]) {
      throw new TypeError(`ragged tensor: the lists at depth ${depth} differ in length`);
    }
    for (const item of node) walk(item, depth + 1);
  };
  walk(value, 0);
  return { data, dims };
}
