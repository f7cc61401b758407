import { Type } from '@sinclair/typebox';
import { Ajv } from 'ajv';
import { BACKEND_KINDS, type BackendKind } from '../../shared/models/model-spec.js';
import { OneOf } from '../../shared/schema/one-of.js';

/** RFC 9457 problem details, the body of every error answer. */
export const ProblemSchema = Type.Object(
  {
    type: Type.String(),
    title: Type.String(),
    status: Type.Integer(),
    detail: Type.String(),
    code: Type.String(),
    request_id: Type.String(),
  },
  { additionalProperties: true },
);

export const ModelParamsSchema = Type.Object({
  model: Type.String({ minLength: 1, maxLength: 128 }),
});

/** Per-request inference parameters: query string, or multipart fields beside the file. */
export const InferenceParamsSchema = Type.Object(
  {
    top_k: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
    threshold: Type.Optional(Type.Number({ minimum: 0, maximum: 1 })),
    version: Type.Optional(Type.String({ pattern: '^[0-9]{1,9}$' })),
    /** Run on this backend only (no fallback), where the model allows choosing. */
    backend: Type.Optional(OneOf(BACKEND_KINDS)),
  },
  { additionalProperties: false },
);

export interface InferenceParamsInput {
  top_k?: number;
  threshold?: number;
  version?: string;
  backend?: BackendKind;
}

const ajv = new Ajv({ coerceTypes: true, allErrors: false });
const validateParams = ajv.compile<InferenceParamsInput>(InferenceParamsSchema);

/** Validates multipart fields (strings) against {@link InferenceParamsSchema}. */
export function parseInferenceFields(
  fields: Record<string, string>,
): InferenceParamsInput | string {
  const values: Record<string, unknown> = { ...fields };
  if (validateParams(values)) return values;
  const [e] = validateParams.errors ?? [];
  const field = e?.instancePath.slice(1) || e?.params.additionalProperty;
  return e?.keyword === 'additionalProperties'
    ? `Unknown field "${field}"; accepted: file, top_k, threshold, version, backend`
    : `Field "${field}" ${e?.message ?? 'is invalid'}`;
}
