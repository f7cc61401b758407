/**
 * Tensors as JSON text, written and read without building nested arrays of boxed numbers: a
 * 224x224x3 input is 150k floats, and both TF Serving's REST API and the Open Inference Protocol's
 * JSON form carry them as decimal text.
 */

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

const OPEN = 0x5b; // [
const CLOSE = 0x5d; // ]
const COMMA = 0x2c; // ,
/** Longest text formatFloat32 writes: a sign and 15 digits ("-999999986991104"). */
const MAX_VALUE_BYTES = 16;

/**
 * Writes float32 values as JSON text straight into bytes, each distinct value formatted once. A
 * 224x224x3 image tensor takes about 1.7 MB, where nested arrays through JSON.stringify take 3 MB
 * and about three times as long.
 */
class TensorWriter {
  private readonly texts = new FloatTexts();

  /** `data[offset .. offset + product(dims))` as nested lists, row-major. */
  nested(data: Float32Array, dims: readonly number[], offset = 0): Buffer {
    const count = dims.reduce((a, b) => a * b, 1);
    // Each value with its comma, and the brackets of at most one list per depth per value.
    const out = Buffer.allocUnsafe(count * (MAX_VALUE_BYTES + 1 + 2 * dims.length) + 2);
    const bits = bitsOf(data);
    if (dims.length === 0) return out.subarray(0, this.texts.write(out, 0, data, bits, offset));
    // The index of the innermost list being written, as digits of the outer dimensions: where a
    // digit wraps to 0, a list of that depth ends (and the next one starts).
    const outer = dims.slice(0, -1);
    const digits = new Int32Array(outer.length);
    const inner = dims.at(-1)!;
    let opening = outer.length;
    let pos = 0;
    for (let start = offset; start < offset + count; start += inner) {
      for (let k = 0; k <= opening; k++) out[pos++] = OPEN;
      pos = this.texts.write(out, pos, data, bits, start);
      for (let i = start + 1; i < start + inner; i++) {
        out[pos++] = COMMA;
        pos = this.texts.write(out, pos, data, bits, i);
      }
      out[pos++] = CLOSE;
      let closing = 0;
      for (let d = outer.length - 1; d >= 0 && ++digits[d]! === outer[d]; d--) {
        digits[d] = 0;
        closing++;
      }
      for (let k = 0; k < closing; k++) out[pos++] = CLOSE;
      if (closing < outer.length) out[pos++] = COMMA;
      opening = closing;
    }
    return out.subarray(0, pos);
  }

  /** The values as one flat list. */
  flat(data: Float32Array): Buffer {
    return this.nested(data, [data.length]);
  }
}

/** Slots of the table of formatted values: a power of two. */
const TEXT_SLOTS = 4096;
/** Distinct values remembered (a preprocessed image has fewer than 1000: 256 levels a channel). */
const TEXT_LIMIT = TEXT_SLOTS / 2;

/**
 * The decimal text of each float32 value met, kept by its bit pattern in an open-addressing table
 * of typed arrays: a probe is a multiply, a shift and a compare, several times cheaper than a
 * `Map` lookup, which matters at 150k values an image. Past {@link TEXT_LIMIT} distinct values
 * (not an image) the rest are formatted each time.
 */
class FloatTexts {
  private readonly keys = new Uint32Array(TEXT_SLOTS);
  /** Where a slot's text starts in `bytes`, plus one (0: the slot is empty). */
  private readonly starts = new Int32Array(TEXT_SLOTS);
  private readonly lengths = new Uint8Array(TEXT_SLOTS);
  private bytes = new Uint8Array(TEXT_LIMIT * 8);
  private used = 0;
  private size = 0;

  /** Writes `data[i]` at `pos`; returns the position after it. */
  write(out: Buffer, pos: number, data: Float32Array, bits: Uint32Array, i: number): number {
    const key = bits[i]!;
    let slot = Math.imul(key, 0x9e3779b1) >>> 20;
    for (;;) {
      const start = this.starts[slot]! - 1;
      if (start < 0) break;
      if (this.keys[slot] === key) {
        const end = start + this.lengths[slot]!;
        // A byte loop beats Buffer.set for copies this short.
        for (let k = start; k < end; k++) out[pos++] = this.bytes[k]!;
        return pos;
      }
      slot = (slot + 1) & (TEXT_SLOTS - 1);
    }
    const text = formatFloat32(data[i]!);
    if (this.size < TEXT_LIMIT) this.remember(slot, key, text);
    return pos + out.write(text, pos, 'latin1');
  }

  private remember(slot: number, key: number, text: string): void {
    if (this.used + text.length > this.bytes.length) {
      const grown = new Uint8Array(this.bytes.length * 2);
      grown.set(this.bytes);
      this.bytes = grown;
    }
    for (let k = 0; k < text.length; k++) this.bytes[this.used + k] = text.charCodeAt(k);
    this.keys[slot] = key;
    this.starts[slot] = this.used + 1;
    this.lengths[slot] = text.length;
    this.used += text.length;
    this.size++;
  }
}

function bitsOf(data: Float32Array): Uint32Array {
  return new Uint32Array(data.buffer, data.byteOffset, data.length);
}

/** The tensor as nested JSON lists (TF Serving's natural form), e.g. `[[1,2],[3,4]]`. */
export function nestedJson(data: Float32Array, dims: readonly number[]): Buffer {
  return new TensorWriter().nested(data, dims);
}

/**
 * One nested JSON list per item of the first dimension (TF Serving's row form: one instance per
 * batch item).
 */
export function rowsJson(data: Float32Array, dims: readonly number[]): Buffer[] {
  const [batch = 0, ...rest] = dims;
  const size = rest.reduce((a, b) => a * b, 1);
  const writer = new TensorWriter();
  return Array.from({ length: batch }, (_, i) => writer.nested(data, rest, i * size));
}

/** The tensor as one flat JSON list (the Open Inference Protocol's `data`). */
export function flatJson(data: Float32Array): Buffer {
  return new TensorWriter().flat(data);
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
