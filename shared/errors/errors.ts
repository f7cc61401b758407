import createError, { type FastifyErrorConstructor } from '@fastify/error';
import { CATALOGUE, type ErrorCode } from './catalogue.js';

/** One argument per `%s`/`%d` placeholder of a message template, so arity is checked. */
export type TemplateArgs<M extends string> = M extends `${string}%${'s' | 'd'}${infer Rest}`
  ? [string | number | undefined, ...TemplateArgs<Rest>]
  : [];

type ErrorClasses = {
  [K in ErrorCode]: FastifyErrorConstructor<
    { code: K; statusCode: number },
    TemplateArgs<(typeof CATALOGUE)[K]['message']>
  >;
};

/**
 * One error class per catalogue code, so a route throws `new errors.MODEL_NOT_FOUND(name)` and
 * the error handler finds status, title and code on the error itself.
 */
export const errors = Object.fromEntries(
  Object.entries(CATALOGUE).map(([code, spec]) => [
    code,
    createError(code, spec.message, spec.status),
  ]),
) as unknown as ErrorClasses;

/**
 * Keeps what caused an error for the logs (the error handler logs 5xx answers with their cause),
 * while the answer's detail stays the catalogue's words.
 */
export function withCause<E extends Error>(error: E, cause: unknown): E {
  return Object.assign(error, { cause });
}

/**
 * What caused an error, in the operator's words (a server's address and answer, a file's path):
 * the message of the cause {@link withCause} kept, or undefined when it kept none.
 */
export function causeOf(error: unknown): string | undefined {
  const cause = (error as { cause?: unknown } | undefined)?.cause;
  if (cause === undefined) return undefined;
  return cause instanceof Error ? cause.message : String(cause);
}
