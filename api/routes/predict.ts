import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Config } from '../../shared/config/config.js';
import { CATALOGUE, isErrorCode } from '../../shared/errors/index.js';
import { type JobResource, JobResourceSchema } from '../../shared/jobs/job-resource.js';
import { errors } from '../http/errors.js';
import { parsePrefer, planWait, type WaitPlan } from '../http/prefer.js';
import { ModelParamsSchema, ProblemResponses } from '../http/schemas.js';
import { serverTiming } from '../http/server-timing.js';
import {
  PredictQuerySchema,
  SubmissionHeadersSchema,
  type SubmissionReader,
  uploadBody,
} from '../http/submission.js';
import type { JobLookup } from '../jobs/job-lookup.js';
import type { AcceptedJob, JobSubmitter } from '../jobs/job-submitter.js';
import { problemType, sendProblem } from '../plugins/problem-details.js';
import { labelInference } from '../plugins/request-metrics.js';
import { quotaHeaders } from '../quotas/quota-headers.js';

export interface PredictRoutesOptions {
  config: Config;
  submissions: SubmissionReader;
  submitter: JobSubmitter;
  jobs: JobLookup;
}

/**
 * POST /predict/{model}: the synchronous path. The job is queued like any other; the request waits
 * for it (default SYNC_WAIT_SECONDS, `Prefer: wait=N` up to SYNC_WAIT_MAX_SECONDS) and answers 200
 * with the finished job, or 202 with `Location` when the wait runs out: the job carries on.
 * `Prefer: respond-async` makes it an async submission, like POST /jobs.
 */
export const predictRoutes: FastifyPluginAsyncTypebox<PredictRoutesOptions> = async (app, opts) => {
  const { config, submissions, submitter, jobs } = opts;

  /**
   * Reads the submission and queues its job. The upload (up to MAX_UPLOAD_BYTES) lives in this
   * function only, so nothing keeps it once it is stored and the request goes on to wait.
   */
  const queue = async (
    request: FastifyRequest,
    model: string,
    plan: WaitPlan,
    signal: AbortSignal,
  ): Promise<AcceptedJob> => {
    const submission = await submissions.read(request, { model, mode: plan.mode });
    return submission.admission.track(
      submitter.submit(submission, { timeoutMs: plan.waitMs, signal }),
    );
  };

  app.post(
    '/predict/:model',
    {
      config: { inference: true, documentedBody: uploadBody(PredictQuerySchema) },
      schema: {
        summary: 'Run a model on an image and wait for the answer',
        description:
          'The job is queued like any other; the request waits for it (`Prefer: wait=N`, capped) and answers 200 with the finished job, or 202 with `Location` when the wait runs out: the job carries on. `Prefer: respond-async` answers 202 at once. A job that fails answers its problem, with `job_id`. A key with a quota (keys file `quota`) is charged one image and one job once everything else accepts the submission: the answer carries `RateLimit-Policy` and `RateLimit` (policies `images_per_day`, `jobs_per_month`); past it, 429 `QUOTA_EXCEEDED` with `Retry-After` at the end of the UTC day or month.',
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
      // Registered first: a request's 'close' fires once its body is read, the response's only
      // when the connection ends, so this is how a client that hangs up is noticed.
      const disconnected = new AbortController();
      reply.raw.once('close', () => {
        if (!reply.raw.writableFinished) disconnected.abort();
      });
      const plan = planWait(parsePrefer(request.headers.prefer), config.sync);
      labelInference(request, { mode: plan.mode });
      const accepted = await queue(request, request.params.model, plan, disconnected.signal);
      if (plan.applied) reply.header('preference-applied', plan.applied);
      const queuedAfterMs = reply.elapsedTime;
      request.jobId = accepted.jobId;
      if (accepted.replayed) reply.header('idempotent-replayed', 'true');
      if (accepted.quota) reply.headers(quotaHeaders(accepted.quota));
      // Finished within the wait; not asked to wait (as accepted); or as it is now (202).
      const job =
        (await accepted.outcome) ??
        (plan.mode === 'async' ? accepted.job : await jobs.get(accepted.jobId));
      if (!job) throw new errors.JOB_NOT_FOUND(accepted.jobId);
      reply.header('server-timing', serverTiming(job, queuedAfterMs, reply.elapsedTime));
      return answer(reply, job, request.id);
    },
  );
};

/**
 * 200 with the finished job (`Content-Location`: where it stays readable); the job's problem when
 * it failed or was canceled (with `job_id`); 202 with `Location` while it runs on.
 */
function answer(reply: FastifyReply, job: JobResource, requestId: string) {
  if (job.status === 'succeeded') {
    return reply.code(200).header('content-location', job.urls.get).send(job);
  }
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
  return reply.code(202).header('location', job.urls.get).send(job);
}
