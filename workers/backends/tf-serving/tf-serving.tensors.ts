import type { OutputTensor } from '../../postprocess/output-tensor.js';
import { type EncodedImages, type InputTensor, isEncoded } from '../inference-backend.js';
import { flattenNested, nestedJson, parseLenientJson, rowsJson } from '../remote/json-tensors.js';

export type RequestFormat = 'row' | 'columnar';

export interface PredictBodyOptions {
  signatureName: string;
  inputName: string;
  format: RequestFormat;
  input: InputTensor | EncodedImages;
}

/**
 * A predict request body. Row form: `{"instances": [{"<input>": item}, ...]}`, one object per batch
 * item; columnar form: `{"inputs": {"<input>": batch}}`. Encoded images go as `{"b64": "..."}`,
 * which TF Serving decodes into the DT_STRING input; tensors as nested lists.
 */
export function predictBody({
  signatureName,
  inputName,
  format,
  input,
}: PredictBodyOptions): Buffer {
  const name = JSON.stringify(inputName);
  const head = `{"signature_name":${JSON.stringify(signatureName)},`;
  if (format === 'row') {
    const rows = isEncoded(input) ? input.encoded.map(b64) : rowsJson(input.data, input.dims);
    const instances = rows.map((row) => [`{${name}:`, row, '}']);
    return join([`${head}"instances":`, ...list(instances), '}']);
  }
  const batch = isEncoded(input)
    ? list(input.encoded.map((image) => [b64(image)]))
    : [nestedJson(input.data, input.dims)];
  return join([`${head}"inputs":{${name}:`, ...batch, '}}']);
}

type Part = string | Uint8Array;

function b64(image: Buffer): Buffer {
  return Buffer.from(JSON.stringify({ b64: image.toString('base64') }));
}

/** `[a,b,...]` from the parts of each item. */
function list(items: Part[][]): Part[] {
  return ['[', ...items.flatMap((item, i) => (i > 0 ? [',', ...item] : item)), ']'];
}

function join(parts: Part[]): Buffer {
  return Buffer.concat(parts.map((part) => (typeof part === 'string' ? Buffer.from(part) : part)));
}

/**
 * The named output of a predict answer. Row answers hold `predictions`: one item per instance, an
 * object of named outputs when the signature has several; columnar answers hold `outputs`: the
 * tensor, or an object of named tensors.
 */
export function readPredictOutput(body: string, outputName: string): OutputTensor {
  const answer = parseLenientJson(body) as { predictions?: unknown; outputs?: unknown };
  if (answer.predictions !== undefined) {
    const rows = answer.predictions;
    if (!Array.isArray(rows)) throw new TypeError('"predictions" is not a list');
    const named = rows.length > 0 && isPlainObject(rows[0]);
    return flattenNested(named ? rows.map((row) => pick(row, outputName)) : rows);
  }
  if (answer.outputs !== undefined) {
    const outputs = answer.outputs;
    return flattenNested(isPlainObject(outputs) ? pick(outputs, outputName) : outputs);
  }
  throw new TypeError('the answer has neither "predictions" nor "outputs"');
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function pick(value: unknown, name: string): unknown {
  if (!isPlainObject(value) || !(name in value)) {
    throw new TypeError(`the answer has no output "${name}"`);
  }
  return value[name];
}
