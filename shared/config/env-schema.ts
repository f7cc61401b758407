import { type Static, Type } from '@sinclair/typebox';
import { OneOf } from '../schema/one-of.js';
import { SIGNING_SECRET_PATTERN } from '../webhooks/signing-secrets.js';

const Integer = (defaultValue: number, minimum = 0, maximum?: number, description?: string) =>
  Type.Integer({ default: defaultValue, minimum, maximum, description });

const Flag = (defaultValue: boolean, description: string) =>
  Type.Boolean({ default: defaultValue, description });

const Url = (description: string) => Type.String({ pattern: '^https?://\\S+$', description });

/**
 * Every environment variable the service reads, with its default for a local run. The README's
 * configuration table is checked against this schema by a test, so the two cannot drift apart.
 */
export const EnvSchema = Type.Object({
  NODE_ENV: OneOf(['development', 'production', 'test'], {
    default: 'development',
    description: 'Runtime environment.',
  }),
  LOG_LEVEL: OneOf(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], {
    default: 'info',
    description: 'pino log level.',
  }),

  HOST: Type.String({
    default: '0.0.0.0',
    minLength: 1,
    description: 'Listen address of the API and of the worker /metrics servers.',
  }),
  PORT: Integer(8000, 0, 65535, 'API listen port.'),
  TLS_CERT_FILE: Type.Optional(
    Type.String({
      minLength: 1,
      description: 'PEM certificate (chain) for HTTPS in-process. Unset: plain HTTP.',
    }),
  ),
  TLS_KEY_FILE: Type.Optional(
    Type.String({ minLength: 1, description: 'PEM private key for TLS_CERT_FILE.' }),
  ),
  TRUST_PROXY: Type.Optional(
    Type.String({
      minLength: 1,
      description:
        'Proxies whose X-Forwarded-For is believed: addresses or CIDRs (comma-separated), a hop count, or true. Unset: none.',
    }),
  ),
  CORS_ORIGINS: Type.Optional(
    Type.String({
      minLength: 1,
      description:
        'Origins allowed to call the API from a browser, comma-separated, or *. Unset: CORS off.',
    }),
  ),
  REQUEST_TIMEOUT_MS: Integer(
    60_000,
    1000,
    undefined,
    'Time a client has to send a whole request (headers and body).',
  ),

  REDIS_URL: Type.String({
    default: 'redis://127.0.0.1:6379',
    pattern: '^rediss?://\\S+$',
    description:
      'Redis for queues, rate limits and backend status; with REDIS_CLUSTER, the seed nodes of the cluster, comma-separated.',
  }),
  REDIS_CLUSTER: Flag(
    false,
    'Connect to a Redis Cluster through the nodes in REDIS_URL; REDIS_PREFIX must then hold a {hash tag}.',
  ),
  REDIS_PREFIX: Type.String({
    default: 'ai-gateway',
    pattern: '^[A-Za-z0-9_{}.-]+$',
    description: 'Key prefix for every Redis key; wrap in {braces} for a Redis Cluster hash tag.',
  }),
  REDIS_TIMEOUT_MS: Integer(5000, 100, undefined, 'Timeout of a Redis command from the API.'),

  S3_ENDPOINT: Type.Optional(Url('S3-compatible endpoint (MinIO). Unset: local-folder storage.')),
  S3_BUCKET: Type.String({
    default: 'ai-gateway',
    pattern: '^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$',
    description: 'Bucket for uploaded images; created at start-up if missing.',
  }),
  S3_ACCESS_KEY: Type.Optional(Type.String({ minLength: 1, description: 'S3 access key id.' })),
  S3_SECRET_KEY: Type.Optional(Type.String({ minLength: 1, description: 'S3 secret key.' })),
  S3_REGION: Type.String({ default: 'us-east-1', minLength: 1, description: 'S3 region.' }),
  S3_TIMEOUT_MS: Integer(5000, 100, undefined, 'Timeout of one S3 request.'),
  LOCAL_STORAGE_DIR: Type.String({
    default: 'data/objects',
    minLength: 1,
    description: 'Folder for images when S3_ENDPOINT is unset.',
  }),

  MODELS_CONFIG: Type.String({
    default: 'models/models.yaml',
    minLength: 1,
    description: 'Model registry file (YAML or JSON).',
  }),
  MODEL_REPOSITORY: Type.String({
    default: 'models/repository',
    minLength: 1,
    description: 'ONNX model repository: <name>/<version>/model.onnx.',
  }),

  TENSORFLOW_SERVING_URL: Type.String({
    default: 'http://localhost:8501',
    minLength: 1,
    description: 'TensorFlow Serving REST base URL(s), comma-separated.',
  }),
  AUTOSCALED_BACKENDS: Type.Optional(
    Type.String({
      pattern: '^(onnx|tensorflow)(,(onnx|tensorflow))*$',
      description:
        'Backends whose worker pools scale from zero (KEDA), comma-separated: with no worker running, their models are still taken and queued for the pool to wake up to, instead of 503 MODEL_UNAVAILABLE.',
    }),
  ),
  ONNX_RUNTIME_URL: Type.Optional(
    Type.String({ minLength: 1, description: 'Remote ONNX Runtime server(s). Unset: in-process.' }),
  ),
  BACKEND_TIMEOUT_MS: Integer(
    30_000,
    100,
    undefined,
    'Timeout of one call to a remote backend (TF Serving, remote ONNX Runtime).',
  ),
  ONNX_INTRA_OP_THREADS: Integer(1, 0, 64, 'ONNX Runtime intra-op threads per session (0: auto).'),
  ONNX_INFERENCE_THREAD: Flag(
    false,
    "Run in-process ONNX Runtime in a thread of its own, so a long model run does not hold the worker's event loop (large models, big batches); for small models it costs more than it frees (measured: about 0.5 ms CPU and 1-2 ms latency per job with the bundled model).",
  ),
  BACKEND_CONNECTIONS: Integer(
    16,
    1,
    1024,
    'Keep-alive HTTP connections per remote backend server (replica).',
  ),
  BATCH_CALLS_PER_REPLICA: Integer(
    1,
    1,
    1024,
    "Calls in flight to one remote backend server (replica) for a model that batches (Triton's model instances): while they run, the next batch fills in the worker. Calls beyond what the server runs at once only queue there, each with fewer jobs; 2 keeps a one-instance server busy between calls, in smaller batches. At most BACKEND_CONNECTIONS.",
  ),
  HEALTH_CHECK_INTERVAL_MS: Integer(
    5000,
    100,
    undefined,
    'How often workers probe their backend servers and models.',
  ),
  HEALTH_CHECK_TIMEOUT_MS: Integer(2000, 100, undefined, 'Timeout of one health probe request.'),
  BREAKER_ERROR_THRESHOLD: Integer(
    50,
    1,
    100,
    "Percent of failed requests in the window that opens a server's circuit.",
  ),
  BREAKER_VOLUME_THRESHOLD: Integer(
    5,
    1,
    undefined,
    'Requests in the window before a circuit may open.',
  ),
  BREAKER_WINDOW_MS: Integer(10_000, 100, undefined, 'Rolling window of the failure rate.'),
  BREAKER_RESET_MS: Integer(
    10_000,
    100,
    undefined,
    'How long an open circuit waits before a trial request (half-open).',
  ),

  RATE_LIMIT_ENABLED: Flag(true, 'Per-client rate limiting, shared through Redis.'),
  RATE_LIMIT_REQUESTS: Integer(100, 1, undefined, 'Requests allowed per client per window.'),
  RATE_LIMIT_WINDOW: Integer(60, 1, undefined, 'Rate-limit window in seconds.'),

  MAX_UPLOAD_BYTES: Integer(10 * 1024 * 1024, 1024, undefined, 'Largest accepted image upload.'),
  MAX_IMAGE_PIXELS: Integer(40_000_000, 1, undefined, 'Largest accepted width x height.'),
  MAX_IMAGE_DIMENSION: Integer(16_384, 1, undefined, 'Largest accepted width or height.'),
  MAX_UPLOAD_PARTS: Integer(12, 2, 100, 'Most parts (the file and fields) in a multipart upload.'),
  MAX_FIELD_BYTES: Integer(2048, 64, 65_536, 'Largest multipart field value.'),

  QUEUE_MAX_WAITING: Integer(
    10_000,
    0,
    undefined,
    'Most jobs waiting in one backend queue; past it new work gets 503 QUEUE_FULL (0: no limit).',
  ),
  MAX_EVENT_LOOP_DELAY_MS: Integer(
    1000,
    0,
    undefined,
    'Event-loop delay past which the API sheds requests with 503 OVERLOADED (0: off).',
  ),
  MAX_HEAP_USED_BYTES: Integer(
    0,
    0,
    undefined,
    'Heap use past which the API sheds requests (0: off).',
  ),
  MAX_RSS_BYTES: Integer(
    0,
    0,
    undefined,
    'Resident memory past which the API sheds requests (0: off).',
  ),

  SYNC_WAIT_SECONDS: Integer(30, 0, undefined, 'How long POST /predict waits by default.'),
  SYNC_WAIT_MAX_SECONDS: Integer(120, 0, undefined, 'Cap on a client-requested Prefer: wait.'),

  JOB_ATTEMPTS: Integer(3, 1, 100, 'Attempts per job for transient failures.'),
  JOB_BACKOFF_MS: Integer(500, 0, undefined, 'First retry delay; doubles per attempt.'),
  JOB_RETENTION_SECONDS: Integer(86_400, 60, undefined, 'How long finished jobs are kept.'),
  ORPHANED_JOB_TIMEOUT_SECONDS: Integer(
    300,
    0,
    undefined,
    'Jobs queued for a backend that has had no live worker this long move to another backend of their model, or fail BACKEND_UNAVAILABLE. 0: they wait for a worker however long it takes.',
  ),
  JOB_RETENTION_COUNT: Integer(100_000, 100, undefined, 'Most finished jobs kept per queue.'),
  JOB_EVENTS_HEARTBEAT_MS: Integer(
    15_000,
    100,
    undefined,
    'How often an open job event stream (GET /jobs/{id}/events) sends a heartbeat comment, so proxies keep it open, and re-reads its job.',
  ),
  JOB_EVENTS_MAX_SECONDS: Integer(
    1800,
    1,
    undefined,
    'Longest life of one job event stream connection; past it the stream ends with a `reconnect` event and the client resumes with Last-Event-ID.',
  ),
  FAIR_QUEUE_WINDOW: Integer(
    16,
    1,
    10_000,
    "Most async jobs runnable in a backend's queue at once; the rest wait parked and are let in by fair scheduling across API keys. Give every process the same value.",
  ),
  IMAGE_RETENTION_DAYS: Integer(
    2,
    1,
    3650,
    'Days an uploaded image is kept (an S3 lifecycle rule, or a sweep of the local folder); the same image uploaded again after half of it is stored again, so a reused copy has at least that long left.',
  ),
  INLINE_IMAGE_MAX_BYTES: Integer(
    32_768,
    0,
    1_048_576,
    'Images up to this size travel with their job in Redis (kept until the job ends) instead of through object storage: no storage write and read on the request path. 0: every image goes to storage.',
  ),

  RESULT_CACHE_TTL_SECONDS: Integer(
    3600,
    0,
    2_592_000,
    'How long a finished result is answered again for the same image, model version and parameters, without running the model (0: no result cache).',
  ),
  RESULT_CACHE_SCOPE: OneOf(['owner', 'global'], {
    default: 'owner',
    description:
      "Whose results a request may be answered from: its own API key's (owner), or any key's (global: one tenant can tell from the speed of an answer what another uploaded).",
  }),

  WORKER_CONCURRENCY: Integer(
    4,
    1,
    1024,
    'Jobs one worker process handles at once; with batching on, at least twice the largest batch, so one batch fills while the one before runs.',
  ),
  BATCH_MAX_SIZE: Type.Optional(
    Type.Integer({
      minimum: 1,
      maximum: 128,
      description:
        "Most jobs in one backend call, for every model (overrides the registry's batching.max_size; default 8). 1: batching off.",
    }),
  ),
  BATCH_MAX_DELAY_MS: Type.Optional(
    Type.Number({
      minimum: 0,
      maximum: 1000,
      description:
        "Longest a ready job waits for the rest of its batch, for every model (overrides the registry's batching.max_delay_ms; default 5). A job alone in its worker never waits.",
    }),
  ),
  WORKER_LOCK_DURATION_MS: Integer(
    30_000,
    1000,
    undefined,
    'Job lock; a dead worker is noticed after it.',
  ),
  WORKER_STALLED_INTERVAL_MS: Integer(
    30_000,
    1000,
    undefined,
    'How often stalled jobs are recovered.',
  ),
  WORKER_HEARTBEAT_MS: Integer(5000, 100, undefined, 'How often a worker reports its models.'),

  WORKER_METRICS_PORT: Integer(
    9464,
    0,
    65535,
    'Worker process /metrics port (0: any free port); one per process on a host.',
  ),
  STATS_WINDOW_SECONDS: Integer(
    300,
    60,
    86_400,
    'Window of the recent rates and latency percentiles in GET /stats.',
  ),
  USAGE_RETENTION_DAYS: Integer(
    400,
    1,
    3660,
    'Days each day of usage per key (GET /usage) is kept in Redis.',
  ),
  API_KEYS: Type.Optional(
    Type.String({
      minLength: 1,
      description:
        'API keys as id:key pairs, comma-separated (keys 16+ characters). No keys at all: the API runs open (refused in production).',
    }),
  ),
  API_KEYS_FILE: Type.Optional(
    Type.String({
      minLength: 1,
      description:
        'YAML or JSON file of API keys (ids, SHA-256 digests or keys, per-key rate limits).',
    }),
  ),
  ADMIN_API_KEY: Type.Optional(
    Type.String({
      minLength: 16,
      description: 'Key for /admin/* (queue dashboard). Unset: admin routes are disabled.',
    }),
  ),

  JWT_JWKS_URL: Type.Optional(
    Url(
      'JWKS URL whose keys verify JWT bearer tokens (https unless JWT_JWKS_ALLOW_HTTP). Unset, with no JWT_PUBLIC_KEY: no tokens.',
    ),
  ),
  JWT_JWKS_ALLOW_HTTP: Flag(
    false,
    'Allow an http:// JWT_JWKS_URL (a JWKS inside a trusted network, tests).',
  ),
  JWT_JWKS_TIMEOUT_MS: Integer(
    3000,
    100,
    60_000,
    'Timeout of one JWKS fetch; a JWKS server down or past it answers 503 AUTH_UNAVAILABLE.',
  ),
  JWT_JWKS_COOLDOWN_SECONDS: Integer(
    30,
    0,
    3600,
    'Least time between two JWKS fetches made for a token whose kid is unknown.',
  ),
  JWT_PUBLIC_KEY: Type.Optional(
    Type.String({
      minLength: 1,
      description:
        'A static public key for JWT bearer tokens instead of a JWKS: PEM (SPKI) or a JWK as JSON.',
    }),
  ),
  JWT_ISSUER: Type.Optional(
    Type.String({
      minLength: 1,
      description: 'The iss every token must carry. Unset: not checked.',
    }),
  ),
  JWT_AUDIENCE: Type.Optional(
    Type.String({
      minLength: 1,
      description: 'The aud every token must carry. Unset: not checked.',
    }),
  ),
  JWT_ALGORITHMS: Type.String({
    default: 'RS256,ES256,EdDSA',
    minLength: 1,
    description: 'Signature algorithms accepted, comma-separated; asymmetric only.',
  }),
  JWT_CLOCK_TOLERANCE_SECONDS: Integer(30, 0, 300, 'Clock skew allowed when checking exp and nbf.'),
  JWT_TENANT_CLAIM: Type.String({
    default: 'sub',
    minLength: 1,
    maxLength: 256,
    description: 'The claim that names the tenant.',
  }),
  JWT_ADMIN_SCOPE: Type.Optional(
    Type.String({
      minLength: 1,
      pattern: '^\\S+$',
      description: 'Scope or role that opens /admin/* to a token. Unset: no token opens them.',
    }),
  ),

  OTEL_EXPORTER_OTLP_ENDPOINT: Type.Optional(
    Url('OTLP/HTTP collector base URL (traces go to /v1/traces). Unset: tracing off.'),
  ),

  WEBHOOK_SECRET: Type.Optional(
    Type.String({
      pattern: SIGNING_SECRET_PATTERN,
      description:
        'Master webhook signing secret (whsec_ + base64 of 24-64 random bytes): each tenant without webhook_secrets in the keys file signs with a secret derived from it and its id. Required by the API and the webhooks worker in production; unset elsewhere: a development secret kept in Redis.',
    }),
  ),
  WEBHOOK_SECRET_PREVIOUS: Type.Optional(
    Type.String({
      pattern: SIGNING_SECRET_PATTERN,
      description:
        'The master secret before WEBHOOK_SECRET, while it rotates: derived secrets from both sign every message (two signatures), so receivers can switch at their pace.',
    }),
  ),
  WEBHOOK_TIMEOUT_MS: Integer(10_000, 100, undefined, 'Timeout of one webhook delivery attempt.'),
  WEBHOOK_ATTEMPTS: Integer(8, 1, 100, 'Delivery attempts per webhook (timeouts, 5xx, 429).'),
  WEBHOOK_BACKOFF_MS: Integer(
    1000,
    0,
    undefined,
    'First webhook retry delay; doubles per attempt.',
  ),
  WEBHOOK_MAX_DELAY_MS: Integer(
    300_000,
    0,
    undefined,
    'Cap on a webhook retry delay, Retry-After included.',
  ),
  WEBHOOK_CONCURRENCY: Integer(16, 1, 1024, 'Deliveries one webhooks worker makes at once.'),
  WEBHOOK_TENANT_CONCURRENCY: Integer(
    4,
    1,
    1023,
    'Deliveries of one tenant in flight at once across every webhooks worker; below WEBHOOK_CONCURRENCY, so a tenant with slow receivers cannot hold every slot.',
  ),
  WEBHOOK_ALLOW_PRIVATE: Flag(
    false,
    'Allow webhook targets in private, loopback and other non-public ranges.',
  ),
  WEBHOOK_ALLOWED_HOSTS: Type.Optional(
    Type.String({
      minLength: 1,
      description: 'Webhook hosts allowed whatever their address, comma-separated.',
    }),
  ),

  SHUTDOWN_TIMEOUT_MS: Integer(
    30_000,
    0,
    undefined,
    'Grace period on SIGTERM before forcing exit.',
  ),
});

export type Env = Static<typeof EnvSchema>;
