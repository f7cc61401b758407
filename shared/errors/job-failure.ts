import { format } from 'node:util';
import { UnrecoverableError } from 'bullmq';
import { CATALOGUE, type ErrorCode, isErrorCode, type TemplateArgs } from './catalogue.js';

/** A catalogue error as data, as a client reads it in a job (its error, route, deliveries). */
export interface JobError {
  code: ErrorCode;
  message: string;
}

/** The catalogue's code and words for an error recorded on a job rather than thrown. */
export function jobError<K extends ErrorCode>(
  code: K,
  ...args: TemplateArgs<(typeof CATALOGUE)[K]['message']>
): JobError {
  return { code, message: format(CATALOGUE[code].message, ...args) };
}

/**
 * The error a worker throws to fail a job. Its message carries the catalogue code
 * (`CODE: detail`), which is all BullMQ keeps of it (`failedReason`). An error whose catalogue entry
 * is not `retryable` is an {@link UnrecoverableError}: BullMQ fails the job without more attempts.
 */
export function jobFailure<K extends ErrorCode>(
  code: K,
  ...args: TemplateArgs<(typeof CATALOGUE)[K]['message']>
): Error {
  const spec = CATALOGUE[code];
  const message = `${code}: ${jobError(code, ...args).message}`;
  return 'retryable' in spec && spec.retryable
    ? new Error(message)
    : new UnrecoverableError(message);
}

/** What {@link jobFailure} writes: `CODE: words`. */
const FAILURE = /^([A-Z_]+): ([\s\S]*)$/;

/**
 * The catalogue code of a failure {@link jobFailure} made (an error's message, a job's
 * `failedReason`); undefined for any other text. The one reader of the encoding besides
 * {@link parseJobFailure}.
 */
export function failureCode(reason: string | undefined): ErrorCode | undefined {
  const code = FAILURE.exec(reason ?? '')?.[1];
  return isErrorCode(code) ? code : undefined;
}

/** Reads a job's `failedReason` back into a code and message. */
export function parseJobFailure(failedReason: string | undefined): JobError {
  const match = FAILURE.exec(failedReason ?? '');
  if (match && isErrorCode(match[1])) return { code: match[1], message: match[2]! };
  // Anything else is a worker fault (a bug, a crash, a stalled job): its text stays in the logs
  // and the queue dashboard, not in the answer to the client.
  return { code: 'INFERENCE_FAILED', message: 'The worker failed to process the job' };
}
