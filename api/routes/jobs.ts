import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { errors } from '../../shared/errors/index.js';
import { JobResourceSchema } from '../../shared/jobs/job-resource.js';
import { ownerOf } from '../http/owner.js';
import { ProblemSchema } from '../http/schemas.js';
import {
  JobsQuerySchema,
  type SubmissionFields,
  type SubmissionReader,
} from '../http/submission.js';
import type { InferenceService } from '../inference/inference-service.js';

export interface JobRoutesOptions {
  service: InferenceService;
  submissions: SubmissionReader;
}

const JobParamsSchema = Type.Object({ id: Type.String({ minLength: 1, maxLength: 64 }) });

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
 * GET /jobs/{id} reads a job, DELETE /jobs/{id} cancels one that has not finished. A job belongs
 * to the API key that created it: for any other key it does not exist (404).
 */
export async function jobRoutes(app: FastifyInstance, opts: JobRoutesOptions) {
  const { service, submissions } = opts;

  app.post<{ Querystring: SubmissionFields }>(
    '/jobs',
    {
      schema: {
        querystring: JobsQuerySchema,
        response: { 202: JobResourceSchema, '4xx': ProblemSchema, '5xx': ProblemSchema },
      },
    },
    async (request, reply) => {
      const submission = await submissions.read(request);
      const { jobId, replayed } = await service.submit({
        ...submission,
        requestId: request.id,
        mode: 'async',
      });
      const job = await service.get(jobId, submission.owner);
      if (!job) throw new errors.JOB_NOT_FOUND(jobId);
      if (replayed) reply.header('idempotent-replayed', 'true');
      return reply.code(202).header('location', job.urls.get).send(job);
    },
  );

  app.get<{ Params: { id: string } }>(
    '/jobs/:id',
    {
      schema: {
        params: JobParamsSchema,
        response: { 200: JobResourceSchema, '4xx': ProblemSchema, '5xx': ProblemSchema },
      },
    },
    async (request) => {
      const job = await service.get(request.params.id, ownerOf(request));
      if (!job) throw new errors.JOB_NOT_FOUND(request.params.id);
      return job;
    },
  );

  app.get<{ Querystring: { limit: number; cursor?: string } }>(
    '/jobs',
    {
      schema: {
        querystring: JobListQuerySchema,
        response: { 200: JobListSchema, '4xx': ProblemSchema, '5xx': ProblemSchema },
      },
    },
    async (request, reply) => {
      const { limit, cursor } = request.query;
      const page = await service.list(ownerOf(request), limit, cursor);
      const next = page.next ? `/jobs?limit=${limit}&cursor=${page.next}` : null;
      if (next) reply.header('link', `<${next}>; rel="next"`);
      return { jobs: page.jobs, next };
    },
  );

  app.delete<{ Params: { id: string } }>(
    '/jobs/:id',
    {
      schema: {
        params: JobParamsSchema,
        response: { 200: JobResourceSchema, '4xx': ProblemSchema, '5xx': ProblemSchema },
      },
    },
    async (request) => service.cancel(request.params.id, ownerOf(request)),
  );
}
