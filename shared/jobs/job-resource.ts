import { type Static, Type } from '@sinclair/typebox';
import { parseJobFailure } from '../errors/index.js';
import type { FoundJob } from '../queues/inference-queues.js';

export const JOB_STATUSES = ['queued', 'processing', 'succeeded', 'failed', 'canceled'] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];

const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(schema: T) =>
  Type.Union([schema, Type.Null()]);

/** The public job resource, as GET /jobs/{id} and POST /predict/{model} answer it. */
export const JobResourceSchema = Type.Object(
  {
    id: Type.String(),
    model: Type.String(),
    version: Nullable(Type.String()),
    backend: Type.String(),
    status: Type.Union(JOB_STATUSES.map((s) => Type.Literal(s))),
    result: Nullable(Type.Object({ task: Type.String() }, { additionalProperties: true })),
    error: Nullable(Type.Object({ code: Type.String(), message: Type.String() })),
    attempts: Type.Integer(),
    created_at: Type.String({ format: 'date-time' }),
    started_at: Nullable(Type.String({ format: 'date-time' })),
    completed_at: Nullable(Type.String({ format: 'date-time' })),
    timings: Type.Object({
      queue_ms: Nullable(Type.Number()),
      preprocess_ms: Nullable(Type.Number()),
      inference_ms: Nullable(Type.Number()),
      total_ms: Nullable(Type.Number()),
    }),
    request_id: Type.String(),
    urls: Type.Object({ get: Type.String(), cancel: Type.String() }),
  },
  { $id: 'JobResource' },
);

export type JobResource = Static<typeof JobResourceSchema>;

const STATUS_OF_STATE: Record<FoundJob['state'], JobStatus> = {
  waiting: 'queued',
  delayed: 'queued',
  prioritized: 'queued',
  'waiting-children': 'queued',
  active: 'processing',
  completed: 'succeeded',
  failed: 'failed',
  // Between states (a retry being scheduled): not finished, so still queued.
  unknown: 'queued',
};

const iso = (ms: number | undefined) => (ms ? new Date(ms).toISOString() : null);

export function toJobResource({ backend, job, state }: FoundJob): JobResource {
  const status = STATUS_OF_STATE[state];
  const output = status === 'succeeded' ? job.returnvalue : null;
  const startedAt = job.processedOn;
  const finishedAt = status === 'succeeded' || status === 'failed' ? job.finishedOn : undefined;
  const id = job.id!;
  return {
    id,
    model: job.data.model,
    version: output?.version ?? job.data.version ?? null,
    backend,
    status,
    result: output?.result ?? null,
    error: status === 'failed' ? parseJobFailure(job.failedReason) : null,
    attempts: job.attemptsMade,
    created_at: new Date(job.timestamp).toISOString(),
    started_at: iso(startedAt),
    completed_at: iso(finishedAt),
    timings: {
      queue_ms: startedAt ? startedAt - job.timestamp : null,
      preprocess_ms: output?.timings.preprocess_ms ?? null,
      inference_ms: output?.timings.inference_ms ?? null,
      total_ms: finishedAt ? finishedAt - job.timestamp : null,
    },
    request_id: job.data.requestId,
    urls: { get: `/jobs/${id}`, cancel: `/jobs/${id}` },
  };
}
