import { Type } from '@sinclair/typebox';

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
