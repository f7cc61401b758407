import { DelayedError, type Job, UnrecoverableError } from 'bullmq';
import type { JobReader } from '../../shared/jobs/job-reader.js';
import { isFinalStatus } from '../../shared/jobs/job-resource.js';
import type { WebhookDeliveries } from '../../shared/jobs/webhook-deliveries.js';
import type { Logger } from '../../shared/logging/logger.js';
import type { WebhookMetrics } from '../../shared/metrics/index.js';
import type { WebhookJobData } from '../../shared/queues/index.js';
import type { WebhookSigningSecrets } from '../../shared/webhooks/signing-secrets.js';
import type { TenantDeliverySlots } from './tenant-delivery-slots.js';
import type { AttemptResult, WebhookSender } from './webhook-sender.js';

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
  /** The per-tenant cap on deliveries in flight: a message sends only holding one of its owner's. */
  slots: TenantDeliverySlots;
  logger: Logger;
  metrics?: WebhookMetrics;
  /**
   * Longest pause while a `completed` message waits for its job's outcome to be recorded.
   * @defaultValue 5000
   */
  maxPostponeMs?: number;
  /**
   * Longest pause of a message put back because its owner is at the cap (a slot frees within one
   * attempt's timeout).
   * @defaultValue 10000
   */
  maxDeferMs?: number;
}

/** Postponements of a `completed` message whose outcome is not recorded yet (about a minute). */
const MAX_POSTPONES = 20;
/** The first pause of a message whose owner is at the cap; it doubles per deferral. */
const DEFER_BASE_MS = 100;

export type WebhookProcessor = (job: Job<WebhookJobData>, token?: string) => Promise<void>;

/**
 * One delivery attempt of one message, in order: fix the body (the job resource) at the first
 * attempt, take one of the owner's delivery slots (or put the message back for a moment, no
 * attempt spent, when the owner has every one in use), sign it for the job's owner (Standard
 * Webhooks: id, timestamp, HMAC-SHA256 over `id.timestamp.body`, one signature per secret of the
 * owner), POST it, give the slot back, record the attempt on the job, and tell BullMQ whether to
 * retry (throw), stop (unrecoverable) or finish.
 */
export function createWebhookProcessor(deps: WebhookProcessorDeps): WebhookProcessor {
  const maxPostponeMs = deps.maxPostponeMs ?? 5_000;
  const maxDeferMs = deps.maxDeferMs ?? 10_000;
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

    const claim = await deps.slots.take(data.owner);
    if (!claim.taken) {
      // Put back without spending an attempt, so this worker's slot goes to another message,
      // likely another tenant's.
      const deferred = (data.deferred ?? 0) + 1;
      const delayMs = deferralDelay(deferred, maxDeferMs);
      deps.metrics?.recordDeferral();
      log.debug(
        { owner: data.owner, inFlight: claim.held, deferred, delayMs },
        'webhook deferred: its tenant is at its delivery cap',
      );
      await job.updateData({ ...data, body, deferred });
      await job.moveToDelayed(Date.now() + delayMs, token);
      throw new DelayedError();
    }
    const sentAt = new Date();
    const attempt = job.attemptsMade + 1;
    let result: AttemptResult;
    try {
      result = await deps.sender.send(
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
    } finally {
      // A slot not released frees itself when its lease ends: failing here would send again.
      await deps.slots
        .release(data.owner, claim.holder)
        .catch((err: Error) => log.warn({ err: err.message }, 'webhook slot not released'));
    }
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
      status: result.statusCode ?? undefined,
      error: result.failure === 'timeout' ? 'timeout' : undefined,
      durationSeconds: result.durationMs / 1000,
    });
    const fields = {
      attempt,
      status: result.statusCode,
      code: result.error?.code,
      detail: result.detail,
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
 * The pause before a message put back `deferrals` times is tried again: from 100 ms, doubling, up
 * to `maxMs`, less up to half at random so a tenant's backlog does not come back all at once.
 */
export function deferralDelay(deferrals: number, maxMs: number): number {
  const delay = Math.min(DEFER_BASE_MS * 2 ** Math.max(0, deferrals - 1), maxMs);
  return Math.round(delay * (1 - Math.random() / 2));
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
