import type { ResultCacheTerms } from '../cache/result-cache.js';
import type { BackendKind } from '../models/model-spec.js';
import type { WebhookEvent, WebhookSubscription } from '../webhooks/webhook-subscription.js';

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

/** Job parameters a client may set per request. */
export interface InferenceParams {
  topK?: number;
  threshold?: number;
}

/** The data of an inference job: small, everything large lives in object storage. */
export interface InferenceJobData {
  model: string;
  /** The requested version; absent means the newest the worker has. */
  version?: string;
  /** The image's content address: its key in object storage, unless it travels inline. */
  imageKey: string;
  /** The image is in the job's record (small enough, INLINE_IMAGE_MAX_BYTES), not in storage. */
  imageInline?: true;
  params: InferenceParams;
  /** The API request that created the job, carried into the worker's log lines. */
  requestId: string;
  /**
   * Whose job it is (an API key's id or token tenant; absent: `anonymous`): its webhooks are signed
   * with that tenant's secret, and it counts in that tenant's GET /stats figures.
   */
  owner?: string;
  mode: 'sync' | 'async';
  /** Epoch ms after which the job is not worth starting. */
  deadline?: number;
  /** The client chose the backend: the job is not moved to another one when it fails. */
  pinned?: boolean;
  /** Where the job's webhooks go, when the client asked for them. */
  webhook?: WebhookSubscription;
  /** Remember the result for requests like this one (absent: the result cache is off for it). */
  resultCache?: ResultCacheTerms;
}

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
