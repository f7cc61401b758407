import type { FastifyInstance, FastifyReply } from 'fastify';
import type { Config } from '../../shared/config/config.js';
import { CATALOGUE, errors, isErrorCode } from '../../shared/errors/index.js';
import { type JobResource, JobResourceSchema } from '../../shared/jobs/job-resource.js';
import type { ModelRouter } from '../../shared/routing/router.js';
import { parsePrefer } from '../http/prefer.js';
import {
  type InferenceParamsInput,
  InferenceParamsSchema,
  ModelParamsSchema,
  ProblemSchema,
  parseInferenceFields,
} from '../http/schemas.js';
import { inspectImage } from '../images/image-inspector.js';
import type { InferenceService } from '../inference/inference-service.js';
import { problemType, sendProblem } from '../plugins/problem-details.js';
import { readUpload } from '../uploads/read-upload.js';

export interface PredictRoutesOptions {
  config: Config;
  router: ModelRouter;
  service: InferenceService;
}

/**
 * POST /predict/{model}: the synchronous path. The job is queued like any other; the request waits
 * for it (default SYNC_WAIT_SECONDS, `Prefer: wait=N` up to SYNC_WAIT_MAX_SECONDS) and answers 200
 * with the finished job, or 202 with `Location` when the wait runs out: the job carries on.
 */
export async function predictRoutes(app: FastifyInstance, opts: PredictRoutesOptions) {
  const { config, router, service } = opts;

  app.post<{ Params: { model: string }; Querystring: InferenceParamsInput }>(
    '/predict/:model',
    {
      schema: {
        params: ModelParamsSchema,
        querystring: InferenceParamsSchema,
        response: {
          200: JobResourceSchema,
          202: JobResourceSchema,
          '4xx': ProblemSchema,
          '5xx': ProblemSchema,
        },
      },
    },
    async (request, reply) => {
      // Model and backend checks come first: no upload is read for a request that cannot run.
      let route = router.route({ model: request.params.model, ...pick(request.query.version) });
      const upload = await readUpload(request);
      const fields = parseInferenceFields(upload.fields);
      if (typeof fields === 'string') throw new errors.VALIDATION_FAILED(fields);
      const params = { ...request.query, ...fields };
      if (fields.version && fields.version !== request.query.version) {
        route = router.route({ model: request.params.model, version: fields.version });
      }
      const image = await inspectImage(upload.image, config.uploads.maxPixels);

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

      const disconnected = new AbortController();
      request.raw.once('close', () => disconnected.abort());
      const { jobId, finished } = await service.submit(
        {
          route,
          ...pick(params.version),
          image: upload.image,
          contentType: image.contentType,
          params: {
            ...(params.top_k !== undefined ? { topK: params.top_k } : {}),
            ...(params.threshold !== undefined ? { threshold: params.threshold } : {}),
          },
          requestId: request.id,
          mode: prefer.respondAsync ? 'async' : 'sync',
        },
        { timeoutMs: waitMs, signal: disconnected.signal },
      );
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
  if (job.status === 'failed' && job.error && isErrorCode(job.error.code)) {
    const spec = CATALOGUE[job.error.code];
    return sendProblem(reply, {
      type: problemType(job.error.code),
      title: spec.title,
      status: spec.status,
      detail: job.error.message,
      code: job.error.code,
      request_id: requestId,
      job_id: job.id,
    });
  }
  return reply.code(202).send(job);
}

function pick(version: string | undefined): { version?: string } {
  return version ? { version } : {};
}
