/**
 * Every error the service can answer, declared once: a stable code, an HTTP status, a short title
 * (RFC 9457 `title`) and a message template (`detail`, formatted with util.format). Whether a
 * retry can help decides how a worker fails a job: `retryable` errors are retried with backoff,
 * the rest fail the job at once. README's error table is checked against this list by a test.
 */
export interface ErrorSpec {
  status: number;
  title: string;
  message: string;
  retryable?: boolean;
}

export const CATALOGUE = {
  // Requests
  VALIDATION_FAILED: { status: 400, title: 'Invalid request', message: '%s' },
  FILE_MISSING: {
    status: 400,
    title: 'Image missing',
    message: 'Send the image as a multipart file part named "file" or as a raw image/* body',
  },
  TOO_MANY_FILES: {
    status: 400,
    title: 'Too many files',
    message: 'Send exactly one file part named "file"',
  },
  ROUTE_NOT_FOUND: { status: 404, title: 'Not found', message: 'No route %s %s' },
  PAYLOAD_TOO_LARGE: {
    status: 413,
    title: 'Upload too large',
    message: 'The upload is larger than the limit of %d bytes',
  },
  UNSUPPORTED_MEDIA_TYPE: {
    status: 415,
    title: 'Unsupported media type',
    message: '%s',
  },
  RATE_LIMITED: {
    status: 429,
    title: 'Too many requests',
    message: 'Rate limit of %d requests per %d s exceeded; retry in %d s',
  },
  QUOTA_EXCEEDED: {
    status: 429,
    title: 'Quota exceeded',
    message: 'The quota %s (%d) is used up; it renews at %s',
  },

  // HTTP, refused before routing
  MALFORMED_REQUEST: {
    status: 400,
    title: 'Malformed request',
    message: 'The request is not valid HTTP/1.1',
  },
  REQUEST_TIMEOUT: {
    status: 408,
    title: 'Request timeout',
    message: 'The request was not received in time',
  },
  HEADERS_TOO_LARGE: {
    status: 431,
    title: 'Request headers too large',
    message: 'The request headers are larger than 16 KiB',
  },

  // API keys
  API_KEY_REQUIRED: {
    status: 401,
    title: 'API key required',
    message: 'This route needs an API key: Authorization: Bearer <key>, or X-API-Key: <key>',
  },
  API_KEY_INVALID: {
    status: 401,
    title: 'Invalid API key',
    message: 'The API key is not valid',
  },

  // JWT bearer tokens (each answered with WWW-Authenticate: Bearer error="invalid_token")
  TOKEN_INVALID: {
    status: 401,
    title: 'Invalid token',
    message: 'The token is not valid: %s',
  },
  TOKEN_EXPIRED: {
    status: 401,
    title: 'Token expired',
    message: 'The token expired at %s',
  },
  TOKEN_NOT_YET_VALID: {
    status: 401,
    title: 'Token not yet valid',
    message: 'The token is not valid before %s',
  },
  TOKEN_ISSUER: {
    status: 401,
    title: 'Wrong token issuer',
    message: 'The token was not issued (iss) by the issuer this service accepts',
  },
  TOKEN_AUDIENCE: {
    status: 401,
    title: 'Wrong token audience',
    message: 'The token is not meant (aud) for this service',
  },
  TOKEN_KEY_UNKNOWN: {
    status: 401,
    title: 'Unknown token key',
    message: "No key of the issuer's key set matches the token's kid and alg",
  },
  TOKEN_TENANT_INVALID: {
    status: 401,
    title: 'Invalid token tenant',
    message:
      'The token\'s "%s" claim is missing or not a tenant id (letters, digits, ".", "_", "-"; at most 64)',
  },
  AUTH_UNAVAILABLE: {
    status: 503,
    title: 'Authentication unavailable',
    message: "The issuer's signing keys (JWKS) cannot be fetched now; retry shortly",
    retryable: true,
  },

  // Admin routes (queue dashboard, rate-limit reset)
  ADMIN_UNAUTHORIZED: {
    status: 401,
    title: 'Admin key required',
    message:
      'This route needs the admin key: Authorization: Bearer <key>, X-API-Key: <key>, or Basic auth with the key as password',
  },
  ADMIN_DISABLED: {
    status: 403,
    title: 'Admin routes disabled',
    message: 'Admin routes are disabled: the server has no ADMIN_API_KEY and no JWT_ADMIN_SCOPE',
  },
  ADMIN_SCOPE_REQUIRED: {
    status: 403,
    title: 'Admin scope required',
    message: 'The token has no "%s" scope or role, which admin routes need',
  },
  API_KEY_NOT_FOUND: {
    status: 404,
    title: 'API key not found',
    message: 'No API key has the id "%s"; give a key id, or an IP address for an anonymous client',
  },

  // Tenants' figures (GET /stats)
  TENANT_FORBIDDEN: {
    status: 403,
    title: "Another tenant's figures",
    message: 'Only the admin key may read the figures of tenant "%s"',
  },
  TENANT_NOT_FOUND: {
    status: 404,
    title: 'Tenant not found',
    message: 'No tenant has the id "%s"; give an API key id, or "anonymous"',
  },

  // Images
  INVALID_IMAGE: {
    status: 422,
    title: 'Invalid image',
    message: 'The image cannot be decoded: %s',
  },
  IMAGE_TOO_LARGE: {
    status: 422,
    title: 'Image too large',
    message: 'The image is %dx%d: %s',
  },

  // Models
  MODEL_NOT_FOUND: {
    status: 404,
    title: 'Model not found',
    message: 'Model "%s" is not registered; GET /models lists the models',
  },
  MODEL_VERSION_NOT_FOUND: {
    status: 404,
    title: 'Model version not found',
    message: 'Model "%s" has no version "%s"',
  },
  MODEL_BACKEND_NOT_FOUND: {
    status: 404,
    title: 'Backend not found for model',
    message: 'Model "%s" is not served by backend "%s"; its backends: %s',
  },
  BACKEND_CHOICE_NOT_ALLOWED: {
    status: 400,
    title: 'Backend choice not allowed',
    message: 'Model "%s" does not let requests choose its backend; leave out "backend"',
  },
  MODEL_UNAVAILABLE: {
    status: 503,
    title: 'Model unavailable',
    message: 'Model "%s" is unavailable: %s',
  },

  // Jobs
  JOB_NOT_FOUND: {
    status: 404,
    title: 'Job not found',
    message: 'Job "%s" does not exist or has expired',
  },
  JOB_FINISHED: {
    status: 409,
    title: 'Job already finished',
    message: 'Job "%s" has already finished (%s); only a queued or processing job can be canceled',
  },
  JOB_CANCELED: {
    status: 409,
    title: 'Job canceled',
    message: 'The job was canceled before it finished',
  },
  DEADLINE_EXCEEDED: {
    status: 504,
    title: 'Deadline exceeded',
    message: 'The job was not started by its deadline (%s); it was not run',
  },
  IDEMPOTENCY_KEY_REUSED: {
    status: 422,
    title: 'Idempotency key reused',
    message: 'Idempotency-Key "%s" was already used for a different request (job %s)',
  },
  IDEMPOTENCY_KEY_IN_USE: {
    status: 409,
    title: 'Idempotency key in use',
    message: 'A request with Idempotency-Key "%s" is still being processed; retry shortly',
  },
  WEBHOOK_URL_REFUSED: {
    status: 422,
    title: 'Webhook URL refused',
    message: 'Webhook URL refused: %s',
  },

  // Webhook deliveries: a delivery attempt's `error` in the job resource, never an HTTP answer.
  // Their words are the tenant's to read: the addresses a name resolved to and the network's own
  // messages go to the webhooks worker's log.
  WEBHOOK_TARGET_FORBIDDEN: {
    status: 403,
    title: 'Webhook target forbidden',
    message: 'The webhook URL leads to an address that is not public; it was not called',
  },
  WEBHOOK_TIMEOUT: {
    status: 504,
    title: 'Webhook timeout',
    message: 'The receiver did not answer within %d ms',
  },
  WEBHOOK_UNREACHABLE: {
    status: 502,
    title: 'Webhook receiver unreachable',
    message: 'The receiver could not be reached (%s)',
  },
  WEBHOOK_REJECTED: {
    status: 502,
    title: 'Webhook rejected',
    message: 'The receiver answered HTTP %d',
  },

  // Backends and inference
  BACKEND_UNAVAILABLE: {
    status: 503,
    title: 'Backend unavailable',
    message: '%s',
    retryable: true,
  },
  BACKEND_TIMEOUT: {
    status: 504,
    title: 'Backend timeout',
    message: 'The backend did not answer within %d ms',
    retryable: true,
  },
  INFERENCE_FAILED: {
    status: 500,
    title: 'Inference failed',
    message: '%s',
  },

  // Infrastructure
  STORAGE_UNAVAILABLE: {
    status: 503,
    title: 'Storage unavailable',
    message: 'Image storage is unavailable: %s',
    retryable: true,
  },
  QUEUE_UNAVAILABLE: {
    status: 503,
    title: 'Queue unavailable',
    message: 'The job queue (Redis) is unavailable; retry shortly',
    retryable: true,
  },
  QUEUE_FULL: {
    status: 503,
    title: 'Queue full',
    message: 'The %s queue is full (%d jobs waiting, the limit is %d); retry later',
  },
  OVERLOADED: {
    status: 503,
    title: 'Overloaded',
    message: 'This instance is overloaded (%s); retry shortly',
  },
  SHUTTING_DOWN: {
    status: 503,
    title: 'Shutting down',
    message: 'This instance is shutting down; retry on another',
  },
  INTERNAL: {
    status: 500,
    title: 'Internal error',
    message: 'An unexpected error occurred; quote the request id when reporting it',
  },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof CATALOGUE;

export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && Object.hasOwn(CATALOGUE, code);
}

/** One argument per `%s`/`%d` placeholder of a message template, so arity is checked. */
export type TemplateArgs<M extends string> = M extends `${string}%${'s' | 'd'}${infer Rest}`
  ? [string | number | undefined, ...TemplateArgs<Rest>]
  : [];
