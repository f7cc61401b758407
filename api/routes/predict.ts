import { Type } from '@sinclair/typebox';
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { Config } from '../../shared/config/config.js';
import { CATALOGUE, errors, isErrorCode } from '../../shared/errors/index.js';
import { type JobResource, JobResourceSchema } from '../../shared/jobs/job-resource.js';
import { parsePrefer } from '../http/prefer.js';
import { ModelParamsSchema, ProblemResponses } from '../http/schemas.js';
import {
  PredictQuerySchema,
  type SubmissionFields,
  SubmissionHeadersSchema,
  type SubmissionReader,
  uploadBody,
} from '../http/submission.js';
import type { InferenceService } from '../inference/inference-service.js';
import { problemType, sendProblem } from '../plugins/problem-details.js';

export interface PredictRoutesOptions {
  config: Config;
  submissions: SubmissionReader;
  service: InferenceService;
}

/**
 * POST /predict/{model}: the synchronous path. The job is queued like any other; the request waits
 * for it (default SYNC_WAIT_SECONDS, `Prefer: wait=N` up to SYNC_WAIT_MAX_SECONDS) and answers 200
 * with the finished job, or 202 with `Location` when the wait runs out: the job carries on.
 * `Prefer: respond-async` makes it an async submission, like POST /jobs.
 */
export async function predictRoutes(app: FastifyInstance, opts: PredictRoutesOptions) {
  const { config, submissions, service } = opts;

  app.post<{ Params: { model: string }; Querystring: SubmissionFields }>(
    '/predict/:model',
    {
      config: { inference: true, documentedBody: uploadBody(PredictQuerySchema) },
      schema: {
        summary: 'Run a model on an image and wait for the answer',
        description:
          'The job is queued like any other; the request waits for it (`Prefer: wait=N`, capped) and answers 200 with the finished job, or 202 with `Location` when the wait runs out: the job carries on. `Prefer: respond-async` answers 202 at once. A job that fails answers its problem, with `job_id`.',
        tags: ['inference'],
        params: ModelParamsSchema,
        querystring: PredictQuerySchema,
        headers: Type.Composite([
          SubmissionHeadersSchema,
          Type.Object({
            prefer: Type.Optional(
              Type.String({ description: '`wait=N` (seconds) or `respond-async`.' }),
            ),
          }),
        ]),
        response: {
          200: { description: 'The finished job', ...JobResourceSchema },
          202: { description: 'The job, not finished yet (see Location)', ...JobResourceSchema },
          ...ProblemResponses,
        },
      },
    },
    async (request, reply) => {
      const submission = await submissions.read(request, request.params.model);
      request.inference = {
        model: submission.route.model.name,
        backend: submission.route.backend,
        mode: 'sync',
      };

      const prefer = parsePrefer(request.headers.prefer);
      const waitMs = prefer.respondAsync
        ? 0
        : Math.min(
            prefer.wait === undefined ? config.sync.defaultWaitMs : prefer.wait * 1000,
            config.sync.maxWaitMs,
          );
      const applied = prefer.respondAsync
        ? 'respond-async'
        : prefer.wait !== undefined
          ? `wait=${Math.round(waitMs / 1000)}`
          : undefined;
      if (applied) reply.header('preference-applied', applied);
      if (prefer.respondAsync) request.inference.mode = 'async';

      const disconnected = new AbortController();
      request.raw.once('close', () => disconnected.abort());
      const { jobId, finished, replayed } = await submission.admission.track(
        service.submit(
          {
            ...submission,
            requestId: request.id,
            mode: prefer.respondAsync ? 'async' : 'sync',
          },
          { timeoutMs: waitMs, signal: disconnected.signal },
        ),
      );
      if (replayed) reply.header('idempotent-replayed', 'true');
      await finished;
      const job = await service.get(jobId);
      if (!job) throw new errors.JOB_NOT_FOUND(jobId);
      return answer(reply, job, request.id);
    },
  );
}

function answer(reply: FastifyReply, job: JobResource, requestId: string) {
  reply.header('location', job.urls.get);
  if (job.status === 'succeeded') return reply.code(200).send(job);
  if ((job.status === 'failed' || job.status === 'canceled') && job.error) {
    const code = isErrorCode(job.error.code) ? job.error.code : 'INFERENCE_FAILED';
    const spec = CATALOGUE[code];
    return sendProblem(reply, {
      type: problemType(code),
      title: spec.title,
      status: spec.status,
      detail: job.error.message,
      code,
      request_id: requestId,
      job_id: job.id,
    });
  }
  return reply.code(202).send(job);
}
