import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { errors } from '../../shared/errors/index.js';
import { JobResourceSchema } from '../../shared/jobs/job-resource.js';
import { ProblemSchema } from '../http/schemas.js';
import type { InferenceService } from '../inference/inference-service.js';

export async function jobRoutes(app: FastifyInstance, opts: { service: InferenceService }) {
  app.get<{ Params: { id: string } }>(
    '/jobs/:id',
    {
      schema: {
        params: Type.Object({ id: Type.String({ minLength: 1, maxLength: 64 }) }),
        response: { 200: JobResourceSchema, '4xx': ProblemSchema, '5xx': ProblemSchema },
      },
    },
    async (request) => {
      const job = await opts.service.get(request.params.id);
      if (!job) throw new errors.JOB_NOT_FOUND(request.params.id);
      return job;
    },
  );
}
