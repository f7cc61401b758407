import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { errors } from '../../shared/errors/index.js';
import { JobResourceSchema } from '../../shared/jobs/job-resource.js';
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

/**
 * The async API: POST /jobs submits (202 + Location, never waits), GET /jobs/{id} reads a job,
 * DELETE /jobs/{id} cancels one that has not finished.
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
      const job = await service.get(jobId);
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
      const job = await service.get(request.params.id);
      if (!job) throw new errors.JOB_NOT_FOUND(request.params.id);
      return job;
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
    async (request) => service.cancel(request.params.id),
  );
}
