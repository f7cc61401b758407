import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { JobResourceSchema } from '../../shared/jobs/job-resource.js';
import { errors } from '../http/errors.js';
import { ownerOf } from '../http/owner.js';
import { mediaResponse, ProblemResponses } from '../http/schemas.js';
import {
  JobsQuerySchema,
  SubmissionHeadersSchema,
  type SubmissionReader,
  uploadBody,
} from '../http/submission.js';
import type { JobCanceller } from '../jobs/job-canceller.js';
import type { JobEventStreams } from '../jobs/job-event-stream.js';
import type { JobLookup } from '../jobs/job-lookup.js';
import type { JobSubmitter } from '../jobs/job-submitter.js';
import { labelInference } from '../plugins/request-metrics.js';
import { quotaHeaders } from '../quotas/quota-headers.js';

export interface JobRoutesOptions {
  submissions: SubmissionReader;
  submitter: JobSubmitter;
  jobs: JobLookup;
  canceller: JobCanceller;
  events: JobEventStreams;
}

const JobParamsSchema = Type.Object({
  id: Type.String({ minLength: 1, maxLength: 64, description: 'The job id.' }),
});
const tags = ['jobs'];

const JobEventsHeadersSchema = Type.Object({
  'last-event-id': Type.Optional(
    Type.String({
      maxLength: 64,
      description:
        'Resume: the id of the last event received (EventSource sends it when it reconnects). The current state is sent unless it is that one.',
    }),
  ),
});

const JOB_EVENTS_DESCRIPTION = [
  'Server-Sent Events (`text/event-stream`): the job at once, then each change, then the stream ends. Each event is named for what happened: `queued`, `processing`, `moved` (fallback to another backend: `backend` and `route` say where and why), `succeeded`, `failed` or `canceled` (the last event), and carries the whole job resource as its `data`, as GET /jobs/{id} answers it and webhooks send it.',
  "Its `id` names the job's state: reconnecting with `Last-Event-ID` sends the current state unless it is that one; when that was the last event, the answer is 204 (which stops an EventSource from reconnecting).",
  'A `: heartbeat` comment every JOB_EVENTS_HEARTBEAT_MS keeps proxies from closing an idle stream. A connection lives at most JOB_EVENTS_MAX_SECONDS, or until the API shuts down: it then ends with a `reconnect` event (`{"reason": "max_duration" | "shutting_down", "retry_ms": 1000}`), and the client resumes with `Last-Event-ID`.',
  "States, not a log: a change that is over before it could be sent (a job that starts and finishes at once) folds into the next event. Another API key's job is not found (404), as for GET /jobs/{id}.",
].join('\n\n');

const JobListQuerySchema = Type.Object(
  {
    limit: Type.Integer({ minimum: 1, maximum: 100, default: 20, description: 'Jobs per page.' }),
    cursor: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 128,
        description: 'Where the page starts: the cursor in the `next` link of the page before.',
      }),
    ),
  },
  { additionalProperties: false },
);

const JobListSchema = Type.Object({
  jobs: Type.Array(JobResourceSchema),
  next: Type.Union([Type.String(), Type.Null()], {
    description: 'The next page (a path with its cursor); null on the last page.',
  }),
});

/**
 * The async API: POST /jobs submits (202 + Location, never waits), GET /jobs lists one's own jobs,
 * GET /jobs/{id} reads a job, GET /jobs/{id}/events follows it (Server-Sent Events),
 * DELETE /jobs/{id} cancels one that has not finished. A job belongs
 * to the API key that created it: for any other key it does not exist (404).
 */
export const jobRoutes: FastifyPluginAsyncTypebox<JobRoutesOptions> = async (app, opts) => {
  const { submissions, submitter, jobs, canceller, events } = opts;

  app.post(
    '/jobs',
    {
      config: { inference: true, documentedBody: uploadBody(JobsQuerySchema) },
      schema: {
        summary: 'Submit a job (never waits)',
        description:
          'The model is the `model` field (or query parameter). Answers 202 with the queued job and `Location`. With `Idempotency-Key`, a retry answers the same job (`Idempotent-Replayed: true`). A key with a quota (keys file `quota`) is charged one image and one job once everything else accepts the submission: the answer carries `RateLimit-Policy` and `RateLimit` (policies `images_per_day`, `jobs_per_month`); past it, 429 `QUOTA_EXCEEDED` with `Retry-After` at the end of the UTC day or month.',
        tags,
        querystring: JobsQuerySchema,
        headers: SubmissionHeadersSchema,
        response: {
          202: { description: 'The queued job (see Location)', ...JobResourceSchema },
          ...ProblemResponses,
        },
      },
    },
    async (request, reply) => {
      labelInference(request, { mode: 'async' });
      const submission = await submissions.read(request, { mode: 'async' });
      const { job, replayed, quota } = await submission.admission.track(
        submitter.submit(submission),
      );
      request.jobId = job.id;
      if (replayed) reply.header('idempotent-replayed', 'true');
      if (quota) reply.headers(quotaHeaders(quota));
      return reply.code(202).header('location', job.urls.get).send(job);
    },
  );

  app.get(
    '/jobs/:id',
    {
      schema: {
        summary: 'A job: status, result or error, timings, webhook deliveries',
        description: "Another API key's job is not found (404), like one that does not exist.",
        tags,
        params: JobParamsSchema,
        response: { 200: { description: 'The job', ...JobResourceSchema }, ...ProblemResponses },
      },
    },
    async (request) => {
      request.jobId = request.params.id;
      const job = await jobs.get(request.params.id, ownerOf(request));
      if (!job) throw new errors.JOB_NOT_FOUND(request.params.id);
      return job;
    },
  );

  app.get(
    '/jobs/:id/events',
    {
      schema: {
        summary: 'Follow a job: its status changes as Server-Sent Events',
        description: JOB_EVENTS_DESCRIPTION,
        tags,
        params: JobParamsSchema,
        headers: JobEventsHeadersSchema,
        response: {
          200: mediaResponse('The event stream', {
            'text/event-stream': Type.String({
              description:
                'Events `id: <state>`, `event: <name>`, `data: <job resource as JSON>`; comments `: heartbeat`.',
            }),
          }),
          204: {
            type: 'null',
            description: 'The job has ended and `Last-Event-ID` named its last event.',
          },
          ...ProblemResponses,
        },
      },
    },
    async (request, reply) => {
      const { id } = request.params;
      request.jobId = id;
      const opened = await events.open(
        id,
        ownerOf(request),
        request.headers['last-event-id'],
        request.log,
      );
      if (opened.kind === 'missing') throw new errors.JOB_NOT_FOUND(id);
      if (opened.kind === 'seen') return reply.code(204).send();
      return (
        reply
          .header('content-type', 'text/event-stream; charset=utf-8')
          .header('cache-control', 'no-cache, no-transform')
          // nginx would buffer the stream whole otherwise.
          .header('x-accel-buffering', 'no')
          .send(opened.body)
      );
    },
  );

  // Open streams would hold the server's close until they end: each is told to reconnect (to
  // another instance) and ended first.
  app.addHook('preClose', async () => events.closeAll());

  app.get(
    '/jobs',
    {
      schema: {
        summary: 'Your jobs, newest first, a page at a time',
        description:
          'Only the jobs of the API key asking, kept for the job retention. `next` (and the `Link` header) leads to the next page; a page may hold fewer jobs than `limit` when some have expired.',
        tags,
        querystring: JobListQuerySchema,
        response: { 200: JobListSchema, ...ProblemResponses },
      },
    },
    async (request, reply) => {
      const { limit, cursor } = request.query;
      const page = await jobs.list(ownerOf(request), limit, cursor);
      const next = page.next ? `/jobs?limit=${limit}&cursor=${page.next}` : null;
      if (next) reply.header('link', `<${next}>; rel="next"`);
      return { jobs: page.jobs, next };
    },
  );

  app.delete(
    '/jobs/:id',
    {
      schema: {
        summary: 'Cancel a job that has not finished',
        description:
          'A queued job leaves its queue; a running one is stopped by its worker. Both answer the job, status `canceled`. A finished job answers 409 JOB_FINISHED.',
        tags,
        params: JobParamsSchema,
        response: {
          200: { description: 'The canceled job', ...JobResourceSchema },
          ...ProblemResponses,
        },
      },
    },
    async (request) => {
      request.jobId = request.params.id;
      return canceller.cancel(request.params.id, ownerOf(request));
    },
  );
};
