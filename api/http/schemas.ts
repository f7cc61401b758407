import { type TSchema, Type } from '@sinclair/typebox';

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
  { $id: 'Problem', additionalProperties: true },
);

export const ModelParamsSchema = Type.Object({
  model: Type.String({ minLength: 1, maxLength: 128 }),
});

/** Problem answers by status class, as `application/problem+json` (for the OpenAPI document). */
export const ProblemResponses = {
  '4xx': problemResponse('The request was refused: a problem with a stable `code`'),
  '5xx': problemResponse('The service could not answer now: a problem with a stable `code`'),
};

function problemResponse(description: string) {
  return { description, content: { 'application/problem+json': { schema: ProblemSchema } } };
}

/** A response whose body is described as OpenAPI media types rather than one JSON schema. */
export function mediaResponse(description: string, content: Record<string, TSchema>) {
  return {
    description,
    content: Object.fromEntries(
      Object.entries(content).map(([type, schema]) => [type, { schema }]),
    ),
  };
}
