import type { ModelDefinition, TensorflowBackendSpec } from '../../../shared/models/model-spec.js';
import { pickName, shapeMismatch } from '../remote/input-shape.js';
import type { Inspection } from '../remote/remote-backend.js';
import type { SignatureDef } from './tf-serving.client.js';

/** What a predict call needs to know of a checked signature. */
export interface TfSignature {
  signatureName: string;
  inputName: string;
  outputName: string;
}

export const DEFAULT_SIGNATURE = 'serving_default';

/**
 * Checks a model's TF Serving signature against its registry entry: the signature exists, the
 * input and output can be named, and the input takes what the worker sends: a float tensor of the
 * registry's shape (`encoding: tensor`), or encoded image bytes (`encoding: b64`, a DT_STRING).
 */
export function checkSignature(
  model: ModelDefinition,
  spec: TensorflowBackendSpec,
  found: { signature: SignatureDef | undefined; available: string[] },
): Inspection<TfSignature> {
  const signatureName = spec.signature_name ?? DEFAULT_SIGNATURE;
  const { signature } = found;
  if (!signature) {
    return {
      ok: false,
      reason: `TF Serving has no signature "${signatureName}" for it (signatures: ${found.available.join(', ') || 'none'})`,
    };
  }
  const fail = (reason: string): Inspection<TfSignature> => ({
    ok: false,
    reason: `signature "${signatureName}": ${reason}`,
  });
  const input = pickName('input', Object.keys(signature.inputs), spec.input_name);
  if (!input.ok) return fail(input.reason);
  const output = pickName('output', Object.keys(signature.outputs), spec.output_name);
  if (!output.ok) return fail(output.reason);

  const tensor = signature.inputs[input.name]!;
  if (spec.encoding === 'b64') {
    if (tensor.dtype !== 'DT_STRING') {
      return fail(
        `input "${input.name}" is ${tensor.dtype}; encoding b64 needs a DT_STRING input (image bytes)`,
      );
    }
  } else {
    if (tensor.dtype !== 'DT_FLOAT') {
      return fail(
        `input "${input.name}" is ${tensor.dtype}; the worker sends DT_FLOAT (use encoding: b64 for a model that takes image bytes)`,
      );
    }
    const mismatch = shapeMismatch(tensor.shape, model.input);
    if (mismatch) return fail(`input "${input.name}" has ${mismatch}`);
  }
  return { ok: true, signature: { signatureName, inputName: input.name, outputName: output.name } };
}
