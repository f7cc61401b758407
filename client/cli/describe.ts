import { ApiError, ConnectionError, type Job, type Prediction } from '../index.js';

/** How many labels or boxes a line shows; `--json` has them all. */
const SHOWN = 3;

/** A result in a line: `180 0.991, 0 0.009` or `2 detections: dog 0.90 at 16,24 32x16, ...`. */
export function describeResult(result: Prediction | null): string {
  if (!result) return '-';
  switch (result.task) {
    case 'classification':
      return result.predictions
        .slice(0, SHOWN)
        .map((p) => `${p.label} ${p.score.toFixed(3)}`)
        .join(', ');
    case 'detection': {
      const boxes = result.detections.slice(0, SHOWN).map(({ label, score, box }) => {
        const at = `${Math.round(box.x)},${Math.round(box.y)}`;
        return `${label} ${score.toFixed(2)} at ${at} ${Math.round(box.width)}x${Math.round(box.height)}`;
      });
      const more = result.detections.length > SHOWN ? ', ...' : '';
      return `${result.detections.length} detections${boxes.length ? `: ${boxes.join(', ')}` : ''}${more}`;
    }
    case 'embedding':
      return `embedding of ${result.embedding.length} values`;
    case 'raw':
      return `outputs ${Object.keys(result.outputs).join(', ')}`;
  }
}

/** A job in a line: id, status, model, and its result or error. */
export function describeJob(job: Job): string {
  const outcome = job.error
    ? `${job.error.code}: ${job.error.message}`
    : describeResult(job.result);
  const took = job.timings.total_ms === null ? '' : `  (${Math.round(job.timings.total_ms)} ms)`;
  return `${job.id}  ${job.status}  ${job.model}  ${outcome}${took}`;
}

/** An error for a person: the problem's code and detail, or what kept the request from the API. */
export function describeError(error: unknown): string {
  if (error instanceof ApiError) {
    const job = typeof error.problem.job_id === 'string' ? `, job ${error.problem.job_id}` : '';
    return `${error.code}: ${error.problem.detail} (HTTP ${error.status}${job})`;
  }
  if (error instanceof ConnectionError) {
    return `${error.message}: is the API running there? Set --url or AI_GATEWAY_URL`;
  }
  if (isTimeout(error)) return 'no answer in time (request timed out)';
  if (isFileError(error)) return `cannot read ${error.path}: ${error.code}`;
  return error instanceof Error ? error.message : String(error);
}

/**
 * An error as JSON: the API's problem as it answered it; for an error on this side, the same
 * fields with a code of the CLI's own (`CONNECTION_FAILED`, `TIMEOUT`, `FILE_UNREADABLE`,
 * `FAILED`).
 */
export function errorDocument(error: unknown): Record<string, unknown> {
  if (error instanceof ApiError) return error.problem;
  const detail = describeError(error);
  if (error instanceof ConnectionError) return { code: 'CONNECTION_FAILED', detail };
  if (isTimeout(error)) return { code: 'TIMEOUT', detail };
  if (isFileError(error)) return { code: 'FILE_UNREADABLE', detail };
  return { code: 'FAILED', detail };
}

function isTimeout(error: unknown): boolean {
  return error instanceof Error && error.name === 'TimeoutError';
}

function isFileError(error: unknown): error is NodeJS.ErrnoException & { path: string } {
  return error instanceof Error && typeof (error as NodeJS.ErrnoException).path === 'string';
}
