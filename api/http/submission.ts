import { createHash } from 'node:crypto';
import { type Static, type TObject, type TSchema, Type } from '@sinclair/typebox';
import { Ajv, type ValidateFunction } from 'ajv';
import type { FastifyRequest } from 'fastify';
import type { Config } from '../../shared/config/config.js';
import type { InferenceParams, JobMode, JobSpec } from '../../shared/jobs/job-spec.js';
import { BACKEND_KINDS, type BackendKind } from '../../shared/models/model-spec.js';
import { OneOf } from '../../shared/schema/one-of.js';
import { imageKey } from '../../shared/storage/index.js';
import type { TargetPolicy } from '../../shared/webhooks/target-policy.js';
import {
  DEFAULT_WEBHOOK_EVENTS,
  isWebhookEvent,
  type WebhookEvent,
  type WebhookSubscription,
} from '../../shared/webhooks/webhook-subscription.js';
import {
  type AdmissionTicket,
  type QueueAdmission,
  UNCOUNTED,
} from '../admission/queue-admission.js';
import { resultCacheTerms } from '../cache/result-lookup.js';
import { inspectImage } from '../images/image-inspector.js';
import { labelInference } from '../plugins/request-metrics.js';
import type { KeyQuota } from '../quotas/key-quota.js';
import type { ModelRouter, Route } from '../routing/router.js';
import { parseCancelAfter, parseDeadlineField } from './deadline.js';
import { errors } from './errors.js';
import { ownerOf } from './owner.js';
import { readUpload } from './read-upload.js';

/** The priority scale of async jobs: 1 runs first, 10 last. Sync jobs go before all of them. */
export const PRIORITY = { highest: 1, lowest: 10, default: 5 } as const;

/** Fields of a submission: multipart fields beside the file, or query parameters. */
const SUBMISSION_FIELDS = {
  top_k: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
  threshold: Type.Optional(Type.Number({ minimum: 0, maximum: 1 })),
  version: Type.Optional(Type.String({ pattern: '^[0-9]{1,9}$' })),
  priority: Type.Optional(
    Type.Integer({
      minimum: PRIORITY.highest,
      maximum: PRIORITY.lowest,
      description:
        "Order among this API key's own async jobs: 1 first, 10 last (default 5). Between keys, async jobs take turns in the ratio of the keys' weights (fair scheduling); sync requests go before every async job.",
    }),
  ),
  webhook: Type.Optional(Type.String({ minLength: 1, maxLength: 2048 })),
  webhook_events: Type.Optional(
    Type.String({ pattern: '^\\s*[a-z]+\\s*(,\\s*[a-z]+\\s*)*$', maxLength: 64 }),
  ),
  deadline: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
  /** Run on this backend only (no fallback), where the model allows choosing. */
  backend: Type.Optional(OneOf(BACKEND_KINDS)),
};

/** Query parameters of POST /predict/{model} (the model is in the path). */
export const PredictQuerySchema = Type.Object(SUBMISSION_FIELDS, { additionalProperties: false });
/** Query parameters of POST /jobs. */
export const JobsQuerySchema = Type.Object(
  { model: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })), ...SUBMISSION_FIELDS },
  { additionalProperties: false },
);
export type SubmissionFields = Static<typeof JobsQuerySchema>;

const ImageBytes = Type.String({
  format: 'binary',
  description:
    'The image: JPEG, PNG, WebP, GIF, TIFF or AVIF, judged by its content (not by its declared type or name).',
});

/**
 * The upload as the OpenAPI document shows it (the handler reads it: Fastify does not validate it
 * as a schema): multipart with the file part `file` and the fields of `fields`, or the raw image.
 */
export function uploadBody(fields: TObject): { content: Record<string, { schema: TSchema }> } {
  return {
    content: {
      'multipart/form-data': {
        schema: Type.Object(
          { file: ImageBytes, ...fields.properties },
          {
            additionalProperties: false,
            description: 'Fields are checked before the file is stored.',
          },
        ),
      },
      'image/*': { schema: ImageBytes },
      'application/octet-stream': { schema: ImageBytes },
    },
  };
}

/** Request headers of a submission, for the OpenAPI document (checked by SubmissionReader). */
export const SubmissionHeadersSchema = Type.Object({
  'idempotency-key': Type.Optional(
    Type.String({
      description:
        'Makes a retry of the same request answer the same job (1 to 255 printable ASCII characters, per API key).',
    }),
  ),
  'cancel-after': Type.Optional(
    Type.String({
      description:
        'The job must have started within this time (`30s`, `5m`, `1h30m`, `1500ms`, or seconds), or it is not run.',
    }),
  ),
  'cache-control': Type.Optional(
    Type.String({
      description:
        '`no-cache` or `no-store`: run the model even when the result cache holds the answer (the new answer replaces it).',
    }),
  ),
});

const IDEMPOTENCY_KEY = /^[\x21-\x7e][\x20-\x7e]{0,254}$/;

/**
 * A submission read and checked: the job's spec, made here once, and what only this request needs
 * to make the job (the image itself, its route, the owner's quota, the idempotency key).
 */
export interface Submission {
  spec: JobSpec;
  route: Route;
  image: Buffer;
  contentType: string;
  /** The owner's quota (its API key's `quota`); absent: none. */
  quota?: KeyQuota;
  idempotency?: { key: string; fingerprint: string };
  /** `Cache-Control: no-cache` or `no-store`: not answered from the result cache. */
  bypassCache: boolean;
  /** Counts the submission against its queue's limit until it is queued: pass it the submit. */
  admission: AdmissionTicket;
}

/** What the route knows before the submission is read. */
export interface SubmissionTarget {
  /** The model named in the path (POST /predict); absent: a `model` field names it. */
  model?: string;
  mode: JobMode;
}

export interface SubmissionReaderDeps {
  config: Config;
  router: ModelRouter;
  policy: TargetPolicy;
  /** Refuses work for a full queue (QUEUE_FULL); absent: no limit. */
  admission?: QueueAdmission;
}

/**
 * The one way POST /predict/{model} and POST /jobs read a submission: headers and query first (no
 * upload is read for a request that cannot run), then the upload and its fields, the model route,
 * the deadline, the webhook target, the image check, and the request's fingerprint for
 * `Idempotency-Key`.
 */
export class SubmissionReader {
  private readonly validators: Record<'predict' | 'jobs', ValidateFunction<SubmissionFields>>;

  constructor(private readonly deps: SubmissionReaderDeps) {
    const ajv = new Ajv({ coerceTypes: true, allErrors: false });
    this.validators = {
      predict: ajv.compile<SubmissionFields>(PredictQuerySchema),
      jobs: ajv.compile<SubmissionFields>(JobsQuerySchema),
    };
  }

  async read(request: FastifyRequest, target: SubmissionTarget): Promise<Submission> {
    const { config } = this.deps;
    const query = request.query as SubmissionFields;
    const { model: pathModel, mode } = target;
    const idempotencyKey = header(request, 'idempotency-key');
    if (idempotencyKey !== undefined && !IDEMPOTENCY_KEY.test(idempotencyKey)) {
      throw new errors.VALIDATION_FAILED(
        'Header Idempotency-Key must be 1 to 255 printable ASCII characters',
      );
    }
    const cancelAfter = header(request, 'cancel-after');

    const queryModel = pathModel ?? query.model;
    let route = queryModel ? this.route(request, queryModel, routeTarget(query)) : undefined;
    // A full queue is refused before the upload is read, where the model is known by then.
    if (route) this.deps.admission?.check(route.backend);
    const upload = await readUpload(request, config.uploads);
    const fields = this.parseFields(upload.fields, pathModel === undefined ? 'jobs' : 'predict');
    const merged: SubmissionFields = { ...query, ...fields };
    const model = pathModel ?? merged.model;
    if (!model) {
      throw new errors.VALIDATION_FAILED(
        'Name the model: a "model" field beside the file, or a "model" query parameter',
      );
    }
    if (
      !route ||
      model !== queryModel ||
      merged.version !== query.version ||
      merged.backend !== query.backend
    ) {
      route = this.route(request, model, routeTarget(merged));
    }

    const deadline = this.deadline(merged.deadline, cancelAfter);
    const webhook = this.webhook(merged.webhook, merged.webhook_events);
    const image = await inspectImage(upload.image, config.uploads);
    const key = imageKey(upload.image);
    const params: InferenceParams = { topK: merged.top_k, threshold: merged.threshold };
    const owner = ownerOf(request);
    const spec: JobSpec = {
      model: route.model.name,
      version: merged.version,
      params,
      mode,
      // Sync jobs carry no priority: BullMQ runs those before every prioritised (async) job.
      priority: mode === 'async' ? (merged.priority ?? PRIORITY.default) : undefined,
      deadline,
      webhook,
      owner,
      requestId: request.id,
      pinned: route.pinned || undefined,
      imageKey: key,
      imageInline: upload.image.length <= config.images.inlineMaxBytes || undefined,
      resultCache: resultCacheTerms(config.resultCache, route, owner),
    };
    const submission: Submission = {
      spec,
      route,
      image: upload.image,
      contentType: image.contentType,
      quota: request.principal?.kind === 'key' ? request.principal.quota : undefined,
      bypassCache: bypassesCache(header(request, 'cache-control')),
      admission: UNCOUNTED,
    };
    if (idempotencyKey !== undefined) {
      // What makes two requests "the same": everything the client chose, the image by its hash.
      // A deadline counts as written (a relative one is the same request when retried later).
      const fingerprint = createHash('sha256')
        .update(
          JSON.stringify([
            model,
            merged.version ?? null,
            merged.backend ?? null,
            params.topK ?? null,
            params.threshold ?? null,
            key,
            merged.priority ?? null,
            webhook?.url ?? null,
            webhook?.events ?? null,
            merged.deadline ?? null,
            cancelAfter ?? null,
          ]),
        )
        .digest('hex');
      submission.idempotency = { key: idempotencyKey, fingerprint };
    }
    if (this.deps.admission) submission.admission = this.deps.admission.admit(route.backend);
    return submission;
  }

  /**
   * The model's route. The request is labelled with the model before the router can refuse it
   * (unavailable, no such backend), so the refusal counts under that model; then with the backend.
   */
  private route(
    request: FastifyRequest,
    model: string,
    target: { version?: string; backend?: BackendKind },
  ): Route {
    labelInference(request, { model });
    const route = this.deps.router.route({ model, ...target });
    labelInference(request, { backend: route.backend });
    return route;
  }

  private parseFields(fields: Record<string, string>, route: 'predict' | 'jobs'): SubmissionFields {
    const validate = this.validators[route];
    const values: Record<string, unknown> = { ...fields };
    if (validate(values)) return values;
    const [e] = validate.errors ?? [];
    const field = e?.instancePath.slice(1) || e?.params.additionalProperty;
    const schema: TObject = route === 'jobs' ? JobsQuerySchema : PredictQuerySchema;
    throw new errors.VALIDATION_FAILED(
      e?.keyword === 'additionalProperties'
        ? `Unknown field "${field}"; accepted: file, ${Object.keys(schema.properties).join(', ')}`
        : `Field "${field}" ${e?.message ?? 'is invalid'}`,
    );
  }

  private deadline(field: string | undefined, cancelAfter: string | undefined): number | undefined {
    if (field !== undefined && cancelAfter !== undefined) {
      throw new errors.VALIDATION_FAILED(
        'Give a deadline field or a Cancel-After header, not both',
      );
    }
    const now = Date.now();
    const parsed =
      field !== undefined
        ? parseDeadlineField(field, now)
        : cancelAfter !== undefined
          ? parseCancelAfter(cancelAfter, now)
          : undefined;
    if (typeof parsed === 'string') throw new errors.VALIDATION_FAILED(parsed);
    if (parsed !== undefined && parsed <= now) {
      throw new errors.VALIDATION_FAILED(
        `The deadline ${new Date(parsed).toISOString()} has already passed`,
      );
    }
    return parsed;
  }

  private webhook(
    url: string | undefined,
    eventList: string | undefined,
  ): WebhookSubscription | undefined {
    if (url === undefined) {
      if (eventList !== undefined) {
        throw new errors.VALIDATION_FAILED('Field "webhook_events" needs a "webhook" URL');
      }
      return undefined;
    }
    const events: WebhookEvent[] = [];
    for (const name of (eventList ?? DEFAULT_WEBHOOK_EVENTS.join(',')).split(',')) {
      const event = name.trim();
      if (!isWebhookEvent(event)) {
        throw new errors.VALIDATION_FAILED(
          `Unknown webhook event "${event}"; accepted: started, completed`,
        );
      }
      if (!events.includes(event)) events.push(event);
    }
    const verdict = this.deps.policy.checkUrl(url);
    if (!verdict.allowed) throw new errors.WEBHOOK_URL_REFUSED(verdict.reason);
    return { url: verdict.url.href, events };
  }
}

function header(request: FastifyRequest, name: string): string | undefined {
  const value = request.headers[name];
  return Array.isArray(value) ? value.join(', ') : value?.trim();
}

/** Whether `Cache-Control` forbids answering from a cache (RFC 9111: `no-cache`, `no-store`). */
function bypassesCache(cacheControl: string | undefined): boolean {
  if (cacheControl === undefined) return false;
  return cacheControl
    .toLowerCase()
    .split(',')
    .some((directive) => {
      const name = directive.split('=')[0]!.trim();
      return name === 'no-cache' || name === 'no-store';
    });
}

/** What a request asks of the router beside the model: a version, a backend. */
function routeTarget(fields: SubmissionFields): { version?: string; backend?: BackendKind } {
  return { version: fields.version, backend: fields.backend };
}
