import createError, { type FastifyErrorConstructor } from '@fastify/error';
import { CATALOGUE, type ErrorCode, type TemplateArgs } from '../../shared/errors/catalogue.js';

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
