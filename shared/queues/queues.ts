import type { BackendKind } from '../models/model-spec.js';
import type { WebhookEvent } from '../webhooks/webhook-subscription.js';

/** Every BullMQ queue of the system. */
export enum QueueName {
  InferenceOnnx = 'inference-onnx',
  InferenceTensorflow = 'inference-tensorflow',
  Webhooks = 'webhooks',
}

/** Every job type. */
export enum JobName {
  Infer = 'infer',
  DeliverWebhook = 'deliver-webhook',
}

/** Each backend's inference queue: the compiler rejects a backend without one. */
export const INFERENCE_QUEUES: Record<BackendKind, QueueName> = {
  onnx: QueueName.InferenceOnnx,
  tensorflow: QueueName.InferenceTensorflow,
};

/** The queues each job type runs on: the compiler rejects a job type without one. */
export const JOB_QUEUES: Record<JobName, readonly QueueName[]> = {
  [JobName.Infer]: Object.values(INFERENCE_QUEUES),
  [JobName.DeliverWebhook]: [QueueName.Webhooks],
};

/** One webhook message to deliver: the body is the job resource, built at the first attempt. */
export interface WebhookJobData {
  jobId: string;
  event: WebhookEvent;
  url: string;
  /** The Standard Webhooks `webhook-id`, the same on every attempt. */
  webhookId: string;
  requestId: string;
  /**
   * The job's owner (an API key id, or `anonymous`): the message is signed with their secrets,
   * which the webhooks worker knows or derives; the secrets themselves never travel.
   */
  owner: string;
  /** The signed body, fixed at the first attempt so every retry sends the same message. */
  body?: string;
  /** How many times delivery was put off because the job had not finished yet. */
  postponed?: number;
  /** How many times delivery was put off because its owner had every delivery slot in use. */
  deferred?: number;
}
