import type { JobResource } from '../../shared/jobs/job-resource.js';

/** The stages of a sync request, in the order its time passes, with what each covers. */
const STAGES = [
  ['api', 'upload received, checked, stored, queued'],
  ['queue', 'waiting for a worker'],
  ['fetch', 'image fetched by the worker'],
  ['preprocess', 'decode, resize, normalise'],
  ['batch', 'waiting for the rest of its batch'],
  ['inference', 'the model (one call per batch)'],
  ['postprocess', 'scores to labels or boxes'],
  ['overhead', 'bookkeeping, completion, answer'],
] as const;

type Stage = (typeof STAGES)[number][0];

/**
 * The `Server-Timing` header (W3C Server Timing) of an answer about a job: where the request's time
 * went, from its arrival to the answer (`total`). The job's stages are its resource's `timings`, so
 * the two agree; `api` is the time until the job was queued; `overhead` is whatever the named
 * stages leave of the total. A stage the job has not reached is left out.
 */
export function serverTiming(job: JobResource, apiMs: number, totalMs: number): string {
  const { timings } = job;
  const durations: Partial<Record<Stage, number | null>> = {
    api: apiMs,
    queue: timings.queue_ms,
    fetch: timings.fetch_ms,
    preprocess: timings.preprocess_ms,
    batch: timings.batch_wait_ms,
    inference: timings.inference_ms,
    postprocess: timings.postprocess_ms,
  };
  let accounted = 0;
  for (const ms of Object.values(durations)) accounted += ms ?? 0;
  if (timings.total_ms !== null) durations.overhead = Math.max(0, totalMs - accounted);
  const entries = STAGES.flatMap(([name, desc]) => {
    const ms = durations[name];
    return ms === null || ms === undefined ? [] : [`${name};desc="${desc}";dur=${round(ms)}`];
  });
  entries.push(`total;dur=${round(totalMs)}`);
  return entries.join(', ');
}

function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}
