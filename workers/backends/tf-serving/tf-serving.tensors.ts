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
  const items = isEncoded(input)
    ? input.encoded.map((bytes) => Buffer.from(JSON.stringify({ b64: bytes.toString('base64') })))
    : undefined;
  const head = Buffer.from(`{"signature_name":${JSON.stringify(signatureName)},`);
  if (format === 'row') {
    const rows = items ?? rowsJson((input as InputTensor).data, (input as InputTensor).dims);
    return Buffer.concat([
      head,
      Buffer.from('"instances":['),
      ...rows.flatMap((row, i) => [Buffer.from(`${i > 0 ? ',' : ''}{${name}:`), row, CLOSE_OBJECT]),
      Buffer.from(']}'),
    ]);
  }
  const batch = items
    ? Buffer.concat([
        Buffer.from('['),
        ...items.flatMap((item, i) => (i > 0 ? [COMMA, item] : [item])),
        Buffer.from(']'),
      ])
    : nestedJson((input as InputTensor).data, (input as InputTensor).dims);
  return Buffer.concat([head, Buffer.from(`"inputs":{${name}:`), batch, Buffer.from('}}')]);
}

const CLOSE_OBJECT = Buffer.from('}');
const COMMA = Buffer.from(',');

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
