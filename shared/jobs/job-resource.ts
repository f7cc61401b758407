import { type Static, Type } from '@sinclair/typebox';
import type { CachedResult } from '../cache/result-cache.js';
import { CATALOGUE, parseJobFailure } from '../errors/index.js';
import type { FoundJob } from '../queues/inference-queues.js';
import { WEBHOOK_EVENTS } from '../webhooks/webhook-subscription.js';
import type { JobRecord, RecordedSpec } from './job-records.js';
import type { WebhookDelivery } from './webhook-deliveries.js';

export const JOB_STATUSES = ['queued', 'processing', 'succeeded', 'failed', 'canceled'] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];

const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(schema: T) =>
  Type.Union([schema, Type.Null()]);

/** A catalogue error as data: a job's error, a fallback step's, a webhook delivery's. */
const JobErrorSchema = Type.Object({ code: Type.String(), message: Type.String() });

const WebhookDeliverySchema = Type.Object({
  webhook_id: Type.String(),
  event: Type.Union(WEBHOOK_EVENTS.map((e) => Type.Literal(e))),
  attempt: Type.Integer(),
  at: Type.String({ format: 'date-time' }),
  duration_ms: Type.Number(),
  status_code: Nullable(Type.Integer()),
  error: Nullable(JobErrorSchema),
  outcome: Type.Union([
    Type.Literal('delivered'),
    Type.Literal('retrying'),
    Type.Literal('failed'),
  ]),
});

/** The public job resource, as GET /jobs/{id} and POST /predict/{model} answer it. */
export const JobResourceSchema = Type.Object(
  {
    id: Type.String(),
    model: Type.String(),
    version: Nullable(Type.String()),
    backend: Type.String(),
    status: Type.Union(JOB_STATUSES.map((s) => Type.Literal(s))),
    result: Nullable(Type.Object({ task: Type.String() }, { additionalProperties: true })),
    error: Nullable(JobErrorSchema),
    attempts: Type.Integer(),
    created_at: Type.String({ format: 'date-time' }),
    started_at: Nullable(Type.String({ format: 'date-time' })),
    completed_at: Nullable(Type.String({ format: 'date-time' })),
    /**
     * Where the job's time went, in ms: waiting in its queue, fetching its image, preprocessing,
     * waiting for the rest of its batch, the model, postprocessing, and from creation to
     * completion; and how many inputs the model call it ran in carried (`batch_size`, 1: on its
     * own). A sync answer's `Server-Timing` header gives the same figures.
     */
    timings: Type.Object({
      queue_ms: Nullable(Type.Number()),
      fetch_ms: Nullable(Type.Number()),
      preprocess_ms: Nullable(Type.Number()),
      batch_wait_ms: Nullable(Type.Number()),
      inference_ms: Nullable(Type.Number()),
      postprocess_ms: Nullable(Type.Number()),
      total_ms: Nullable(Type.Number()),
      batch_size: Nullable(Type.Integer({ minimum: 1 })),
    }),
    /** 1 (first) to 10 (last) for async jobs; null for sync ones, which go before all of them. */
    priority: Nullable(Type.Integer()),
    /** The time by which the job must have started, or it fails DEADLINE_EXCEEDED unrun. */
    deadline: Nullable(Type.String({ format: 'date-time' })),
    webhook: Nullable(
      Type.Object({
        url: Type.String(),
        events: Type.Array(Type.Union(WEBHOOK_EVENTS.map((e) => Type.Literal(e)))),
      }),
    ),
    webhook_deliveries: Type.Array(WebhookDeliverySchema),
    request_id: Type.String(),
    urls: Type.Object({ get: Type.String(), cancel: Type.String() }),
    /**
     * Present (true) when the job was answered from the result cache: an earlier job computed the
     * same answer for the same image, model version and parameters, and nothing ran for this one.
     */
    cached: Type.Optional(
      Type.Boolean({
        description:
          'true: answered from the result cache, without running the model (absent otherwise).',
      }),
    ),
    /**
     * The backends the job was sent to, in order: every step but the last carries the error that
     * made the job move on (fallback); the last is `backend`.
     */
    route: Type.Optional(
      Type.Array(
        Type.Object({
          backend: Type.String(),
          at: Type.String({ format: 'date-time' }),
          error: Nullable(JobErrorSchema),
        }),
      ),
    ),
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

/** A time as RFC 3339; null when absent. */
const iso = (ms: number | undefined) => (ms ? new Date(ms).toISOString() : null);

/**
 * The public job from its BullMQ entry in the queue it is in now and, when given, its record: the
 * record keeps what outlives a move between queues (creation time, route). A completed job's
 * times are its result's, which its completion event carries too, so a sync answer built from the
 * event and a later read say the same.
 */
export function toJobResource({ backend, job, state }: FoundJob, record?: JobRecord): JobResource {
  const status = STATUS_OF_STATE[state];
  const output = status === 'succeeded' ? job.returnvalue : null;
  const startedAt = output?.startedAt ?? job.processedOn;
  const finishedAt =
    status === 'succeeded' || status === 'failed'
      ? (output?.finishedAt ?? job.finishedOn)
      : undefined;
  const createdAt = record?.createdAt ?? job.timestamp;
  const asked = ofSpec(job.id!, record?.spec ?? job.data);
  return {
    ...asked,
    version: output?.version ?? asked.version,
    backend,
    status,
    result: output?.result ?? null,
    error: status === 'failed' ? parseJobFailure(job.failedReason) : null,
    attempts: job.attemptsMade,
    created_at: new Date(createdAt).toISOString(),
    started_at: iso(startedAt),
    completed_at: iso(finishedAt),
    timings: {
      queue_ms: startedAt ? startedAt - job.timestamp : null,
      fetch_ms: output?.timings.fetch_ms ?? null,
      preprocess_ms: output?.timings.preprocess_ms ?? null,
      batch_wait_ms: output?.timings.batch_wait_ms ?? null,
      inference_ms: output?.timings.inference_ms ?? null,
      postprocess_ms: output?.timings.postprocess_ms ?? null,
      total_ms: finishedAt ? finishedAt - createdAt : null,
      batch_size: output?.timings.batch_size ?? null,
    },
    webhook_deliveries: [],
    route: record && describeRoute(record),
  };
}

/** The resource's fields that show what the client asked for: its spec as a view. */
function ofSpec(id: string, spec: RecordedSpec) {
  return {
    id,
    model: spec.model,
    version: spec.version ?? null,
    priority: spec.priority ?? null,
    deadline: iso(spec.deadline),
    webhook: spec.webhook ?? null,
    request_id: spec.requestId,
    urls: { get: `/jobs/${id}`, cancel: `/jobs/${id}` },
  };
}

function describeRoute(record: JobRecord): NonNullable<JobResource['route']> {
  return record.route.map((step) => ({
    backend: step.backend,
    at: new Date(step.at).toISOString(),
    error: step.error ?? null,
  }));
}

/** What is known of one job: its record, its queue entry (if it still has one), its deliveries. */
export interface JobView {
  record: JobRecord;
  found?: FoundJob | undefined;
  deliveries?: WebhookDelivery[];
}

const CANCELED_ERROR = { code: 'JOB_CANCELED', message: CATALOGUE.JOB_CANCELED.message } as const;

/**
 * The job resource from everything known of the job. The record has the last word on
 * cancellation: a job whose cancel was accepted is canceled, whatever its queue entry says, unless
 * it had already succeeded (JobLifecycle makes that combination impossible; the check is a guard).
 * A job with no queue entry is canceled (removed from its queue), being added, or expired
 * (`undefined`).
 */
export function describeJob({ record, found, deliveries = [] }: JobView): JobResource | undefined {
  const { lifecycle = {} } = record;
  let resource: JobResource;
  if (found) resource = toJobResource(found, record);
  else if (record.cachedResult) resource = fromCache(record, record.cachedResult);
  else if (lifecycle.canceledAt || lifecycle.cancelRequestedAt || !lifecycle.settled) {
    resource = fromRecord(record);
  } else return undefined;

  const canceled =
    resource.error?.code === CANCELED_ERROR.code ||
    lifecycle.canceledAt !== undefined ||
    (lifecycle.cancelRequestedAt !== undefined && resource.status !== 'succeeded');
  return {
    ...resource,
    ...(canceled
      ? {
          status: 'canceled' as const,
          result: null,
          error: { ...CANCELED_ERROR },
          completed_at:
            iso(lifecycle.canceledAt ?? lifecycle.cancelRequestedAt) ?? resource.completed_at,
        }
      : {}),
    webhook_deliveries: deliveries,
  };
}

/**
 * A job answered from the result cache when it was created: succeeded at once, nothing queued or
 * run, so it has no stage timings and its whole life took no time.
 */
function fromCache(record: JobRecord, cached: CachedResult): JobResource {
  const at = new Date(record.createdAt).toISOString();
  const resource = fromRecord(record);
  return {
    ...resource,
    version: cached.version,
    status: 'succeeded',
    result: cached.result,
    started_at: at,
    completed_at: at,
    timings: { ...resource.timings, total_ms: 0 },
    cached: true,
  };
}

/** A job known only from its record: not in a queue (yet, or any more). */
function fromRecord(record: JobRecord): JobResource {
  return {
    ...ofSpec(record.id, record.spec),
    backend: record.backend,
    status: 'queued',
    result: null,
    error: null,
    attempts: 0,
    created_at: new Date(record.createdAt).toISOString(),
    started_at: null,
    completed_at: null,
    timings: {
      queue_ms: null,
      fetch_ms: null,
      preprocess_ms: null,
      batch_wait_ms: null,
      inference_ms: null,
      postprocess_ms: null,
      total_ms: null,
      batch_size: null,
    },
    webhook_deliveries: [],
    route: describeRoute(record),
  };
}

/** Whether a job in this status will change no more. */
export function isFinalStatus(status: JobStatus): boolean {
  return status === 'succeeded' || status === 'failed' || status === 'canceled';
}
