import { UnrecoverableError } from 'bullmq';
import { describe, expect, it } from 'vitest';
import { CATALOGUE, type ErrorCode, type ErrorSpec } from '../../shared/errors/catalogue.js';
import { jobFailure, parseJobFailure } from '../../shared/errors/job-failure.js';

const CODES = Object.keys(CATALOGUE) as ErrorCode[];

/** jobFailure for any code, with one filler argument per placeholder. */
function failureFor(code: ErrorCode): Error {
  const placeholders = CATALOGUE[code].message.match(/%[sd]/g) ?? [];
  const args = placeholders.map((p, i) => (p === '%d' ? 100 + i : `arg${i}`));
  return (jobFailure as (code: ErrorCode, ...args: (string | number)[]) => Error)(code, ...args);
}

describe('jobFailure', () => {
  it('a retryable code gives a plain Error, so BullMQ retries it', () => {
    for (const code of ['BACKEND_UNAVAILABLE', 'STORAGE_UNAVAILABLE'] as const) {
      const err = jobFailure(code, 'connection refused');
      expect(err).toBeInstanceOf(Error);
      expect(err).not.toBeInstanceOf(UnrecoverableError);
    }
    expect(jobFailure('BACKEND_TIMEOUT', 5000)).not.toBeInstanceOf(UnrecoverableError);
    expect(jobFailure('QUEUE_UNAVAILABLE')).not.toBeInstanceOf(UnrecoverableError);
  });

  it('a code no retry can help gives an UnrecoverableError', () => {
    expect(jobFailure('INVALID_IMAGE', 'truncated')).toBeInstanceOf(UnrecoverableError);
    expect(jobFailure('MODEL_NOT_FOUND', 'nope')).toBeInstanceOf(UnrecoverableError);
    expect(jobFailure('INFERENCE_FAILED', 'shape')).toBeInstanceOf(UnrecoverableError);
  });

  it('follows the catalogue for every code', () => {
    for (const code of CODES) {
      const spec: ErrorSpec = CATALOGUE[code];
      const err = failureFor(code);
      expect(err instanceof UnrecoverableError, code).toBe(spec.retryable !== true);
    }
  });

  it('formats the message as CODE: detail', () => {
    expect(jobFailure('INVALID_IMAGE', 'the file is empty').message).toBe(
      'INVALID_IMAGE: The image cannot be decoded: the file is empty',
    );
    expect(jobFailure('BACKEND_TIMEOUT', 2500).message).toBe(
      'BACKEND_TIMEOUT: The backend did not answer within 2500 ms',
    );
    expect(jobFailure('MODEL_UNAVAILABLE', 'm', 'not loaded').message).toBe(
      'MODEL_UNAVAILABLE: Model "m" is unavailable: not loaded',
    );
  });
});

describe('parseJobFailure', () => {
  it('reads back code and detail for every catalogue code', () => {
    for (const code of CODES) {
      const err = failureFor(code);
      const parsed = parseJobFailure(err.message);
      expect(parsed.code, code).toBe(code);
      expect(`${parsed.code}: ${parsed.message}`).toBe(err.message);
    }
  });

  it('keeps a multi-line detail whole', () => {
    const err = jobFailure('INFERENCE_FAILED', 'line one\nline two');
    expect(parseJobFailure(err.message)).toEqual({
      code: 'INFERENCE_FAILED',
      message: 'line one\nline two',
    });
  });

  it('maps anything else to INFERENCE_FAILED without leaking the text', () => {
    const generic = { code: 'INFERENCE_FAILED', message: 'The worker failed to process the job' };
    for (const reason of [
      undefined,
      '',
      'TypeError: Cannot read properties of undefined (reading "x") at /srv/app/secret.ts:12',
      'job stalled more than allowable limit',
      'NOT_A_CODE: something',
      'invalid_image: lower case is not a code',
      'INVALID_IMAGE without the colon',
      '__PROTO__: prototype names are not codes',
    ]) {
      expect(parseJobFailure(reason), String(reason)).toEqual(generic);
    }
  });
});
