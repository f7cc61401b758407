import { DelayedError, type Job, UnrecoverableError } from 'bullmq';
import type { JobReader } from '../../shared/jobs/job-reader.js';
import { isFinalStatus } from '../../shared/jobs/job-resource.js';
import type { WebhookDeliveries } from '../../shared/jobs/webhook-deliveries.js';
import type { Logger } from '../../shared/logging/logger.js';
import type { WebhookMetrics } from '../../shared/metrics/index.js';
import type { WebhookJobData } from '../../shared/queues/index.js';
import type { WebhookSigningSecrets } from '../../shared/webhooks/signing-secrets.js';
import type { WebhookSender } from './webhook-sender.js';

/** A failed attempt that may succeed later; carries the receiver's Retry-After for the backoff. */
export class RetryableDeliveryError extends Error {
  override name = 'RetryableDeliveryError';

  constructor(
    message: string,
    readonly retryAfterMs?: number,
  ) {
    super(message);
  }
}

export interface WebhookProcessorDeps {
  reader: JobReader;
  deliveries: WebhookDeliveries;
  sender: WebhookSender;
  /** Signs each message with its job owner's secrets. */
  signer: Pick<WebhookSigningSecrets, 'sign'>;
  logger: Logger;
  metrics?: WebhookMetrics;
  /**
   * Longest pause while a `completed` message waits for its job's outcome to be recorded.
   * @defaultValue 5000
   */
  maxPostponeMs?: number;
}

/** Postponements of a `completed` message whose outcome is not recorded yet (about a minute). */
const MAX_POSTPONES = 20;

export type WebhookProcessor = (job: Job<WebhookJobData>, token?: string) => Promise<void>;

/**
 * One delivery attempt of one message, in order: fix the body (the job resource) at the first
 * attempt, sign it for the job's owner (Standard Webhooks: id, timestamp, HMAC-SHA256 over
 * `id.timestamp.body`, one signature per secret of the owner), POST it, record the attempt on the
 * job, and tell BullMQ whether to retry (throw), stop (unrecoverable) or finish.
 */
export function createWebhookProcessor(deps: WebhookProcessorDeps): WebhookProcessor {
  const maxPostponeMs = deps.maxPostponeMs ?? 5_000;
  return async (job, token) => {
    const { data } = job;
    const log = deps.logger.child({
      jobId: data.jobId,
      requestId: data.requestId,
      webhookId: data.webhookId,
    });
    let body = data.body;
    if (body === undefined) {
      const resource = await deps.reader.read(data.jobId);
      if (!resource) {
        log.warn('job expired before its webhook was sent; nothing to send');
        return;
      }
      if (
        data.event === 'completed' &&
        !isFinalStatus(resource.status) &&
        (data.postponed ?? 0) < MAX_POSTPONES
      ) {
        // The inference worker queues `completed` just before BullMQ records the outcome: wait for
        // it without spending an attempt. Not forever: a worker that died in between leaves the job
        // to be run again, and the message then goes with the job as it is.
        const postponed = (data.postponed ?? 0) + 1;
        await job.updateData({ ...data, postponed });
        await job.moveToDelayed(Date.now() + Math.min(25 * 2 ** postponed, maxPostponeMs), token);
        throw new DelayedError();
      }
      body = JSON.stringify(resource);
      await job.updateData({ ...data, body });
    }

    const sentAt = new Date();
    const attempt = job.attemptsMade + 1;
    const result = await deps.sender.send(
      data.url,
      {
        'content-type': 'application/json',
        'user-agent': 'ai-gateway-webhooks',
        'webhook-id': data.webhookId,
        'webhook-timestamp': String(Math.floor(sentAt.getTime() / 1000)),
        'webhook-signature': deps.signer.sign(data.owner, data.webhookId, sentAt, body),
      },
      body,
    );
    const lastAttempt = attempt >= (job.opts.attempts ?? 1);
    const outcome =
      result.verdict === 'delivered'
        ? 'delivered'
        : result.verdict === 'retry' && !lastAttempt
          ? 'retrying'
          : 'failed';
    await deps.deliveries.add(data.jobId, {
      webhook_id: data.webhookId,
      event: data.event,
      attempt,
      at: sentAt.toISOString(),
      duration_ms: result.durationMs,
      status_code: result.statusCode,
      error: result.error,
      outcome,
    });
    deps.metrics?.recordDelivery({
      outcome,
      ...(result.statusCode !== null ? { status: result.statusCode } : {}),
      ...(result.failure === 'timeout' ? { error: 'timeout' } : {}),
      durationSeconds: result.durationMs / 1000,
    });
    const fields = {
      attempt,
      status: result.statusCode,
      code: result.error?.code,
      ...(result.detail ? { detail: result.detail } : {}),
      ms: result.durationMs,
    };
    if (outcome === 'delivered') {
      log.info(fields, 'webhook delivered');
      return;
    }
    log.warn({ ...fields, outcome }, 'webhook attempt failed');
    // The queue dashboard (admin only) shows the operator's words.
    const reason = result.detail ?? result.error?.message ?? 'delivery failed';
    if (result.verdict === 'stop') throw new UnrecoverableError(reason);
    throw new RetryableDeliveryError(reason, result.retryAfterMs);
  };
}

/**
 * The retry delay after `attemptsMade` failed attempts: the receiver's Retry-After when it sent
 * one, else exponential from `baseMs` with up to 20% jitter (so receivers coming back are not hit
 * by every sender at once); capped at `maxMs`.
 */
export function webhookBackoff(
  attemptsMade: number,
  err: Error | undefined,
  baseMs: number,
  maxMs: number,
): number {
  const retryAfter = err instanceof RetryableDeliveryError ? err.retryAfterMs : undefined;
  const exponential = baseMs * 2 ** Math.max(0, attemptsMade - 1);
  const delay = retryAfter ?? exponential * (1 - Math.random() * 0.2);
  return Math.round(Math.min(delay, maxMs));
}
