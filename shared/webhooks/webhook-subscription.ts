/** The job events a webhook can be sent for. `completed` covers succeeded, failed and canceled. */
export const WEBHOOK_EVENTS = ['started', 'completed'] as const;
export type WebhookEvent = (typeof WEBHOOK_EVENTS)[number];

/** Events sent when a submission names none. */
export const DEFAULT_WEBHOOK_EVENTS: readonly WebhookEvent[] = ['completed'];

/** Where a job's webhooks go and which events are sent there. */
export interface WebhookSubscription {
  url: string;
  events: WebhookEvent[];
}

export function isWebhookEvent(value: string): value is WebhookEvent {
  return (WEBHOOK_EVENTS as readonly string[]).includes(value);
}

/**
 * The stable id of one webhook message (Standard Webhooks `webhook-id`): the same for every retry
 * of it, so a receiver that sees it twice can drop the second. Also the id of its delivery job,
 * so enqueueing the same event twice (a worker retrying a job) sends it once.
 */
export function webhookMessageId(jobId: string, event: WebhookEvent): string {
  return `msg_${jobId}_${event}`;
}
