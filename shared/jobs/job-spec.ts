import type { ResultCacheTerms } from '../cache/result-cache.js';
import type { WebhookSubscription } from '../webhooks/webhook-subscription.js';

/** Job parameters a client may set per request. */
export interface InferenceParams {
  topK?: number;
  threshold?: number;
}

/** `sync`: a request waits for the job (POST /predict); `async`: it does not (POST /jobs). */
export type JobMode = 'sync' | 'async';

/**
 * What a client asked of a job, and who asked: made once, when the API reads the submission
 * (`SubmissionReader.read`), and never changed after. Its BullMQ entry carries it as its data (on
 * every backend it moves to); its record keeps what the job resource shows of it
 * (`RecordedSpec`). Small: the image travels by its key, everything large lives in object storage.
 */
export interface JobSpec {
  model: string;
  /** The version asked for; absent: the newest the worker has. */
  version?: string;
  params: InferenceParams;
  mode: JobMode;
  /**
   * Order among the owner's async jobs, 1 first (BullMQ's priority); absent for sync jobs, which go
   * before every async one.
   */
  priority?: number;
  /** Epoch ms by which the job must have started, or it is not run. */
  deadline?: number;
  /** Where the job's webhooks go, when the client asked for them. */
  webhook?: WebhookSubscription;
  /**
   * Whose job it is (an API key's id or token tenant, or `anonymous`): only they see it, its
   * webhooks are signed with their secret, and it counts in their usage and GET /stats figures.
   */
  owner: string;
  /** The API request that made the job, carried into the worker's log lines. */
  requestId: string;
  /** The client chose the backend: the job is not moved to another one when it fails. */
  pinned?: true;
  /** The image's content address: its key in object storage, unless it travels inline. */
  imageKey: string;
  /** The image is in the job's record (small enough, INLINE_IMAGE_MAX_BYTES), not in storage. */
  imageInline?: true;
  /** Remember the result for requests like this one (absent: the result cache is off for it). */
  resultCache?: ResultCacheTerms;
}
