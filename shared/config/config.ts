import { Ajv } from 'ajv';
import type { BackendKind } from '../models/model-spec.js';
import { type Env, EnvSchema } from './env-schema.js';
import { type Parsed, parseCorsOrigins, parseTrustProxy, type TrustProxy } from './http-options.js';
import { type JwtConfig, parseJwtConfig } from './jwt-options.js';
import { missingForRoles, PROCESS_ROLES, type ProcessRole } from './process-roles.js';

export type StorageConfig =
  | {
      kind: 's3';
      endpoint: string;
      bucket: string;
      region: string;
      accessKeyId: string;
      secretAccessKey: string;
      timeoutMs: number;
    }
  | { kind: 'local'; dir: string; bucket: string };

/** The validated, frozen configuration. Built once per process by {@link loadConfig}. */
export interface Config {
  env: Env['NODE_ENV'];
  logLevel: Env['LOG_LEVEL'];
  http: {
    host: string;
    port: number;
    /** Absent: plain HTTP. */
    tls?: { certFile: string; keyFile: string };
    trustProxy: TrustProxy;
    /** `*`, or the origins allowed; empty: CORS off. */
    corsOrigins: '*' | string[];
    requestTimeoutMs: number;
  };
  redis: {
    url: string;
    prefix: string;
    commandTimeoutMs: number;
    /** Present: a Redis Cluster, reached through these seed nodes (`url` lists them too). */
    clusterNodes?: string[];
  };
  storage: StorageConfig;
  models: { configPath: string; repository: string };
  backends: {
    tensorflowServingUrls: string[];
    onnxRuntimeUrls: string[];
    /** Worker pools that scale from zero: with no worker, their models are queued, not refused. */
    scaledFromZero: BackendKind[];
    timeoutMs: number;
    onnxIntraOpThreads: number;
    /** In-process ONNX Runtime runs in a thread of its own, off the worker's event loop. */
    onnxInferenceThread: boolean;
    /** Keep-alive connections per remote server. */
    connectionsPerReplica: number;
    /** Calls in flight per remote server for a model that batches. */
    batchCallsPerReplica: number;
    healthCheck: { intervalMs: number; timeoutMs: number };
    breaker: {
      errorThresholdPercent: number;
      volumeThreshold: number;
      windowMs: number;
      resetMs: number;
    };
  };
  rateLimit: { enabled: boolean; max: number; windowSeconds: number };
  uploads: {
    maxBytes: number;
    maxPixels: number;
    maxDimension: number;
    maxParts: number;
    maxFieldBytes: number;
  };
  /** When new work is refused instead of queued (0: that check is off). */
  admission: {
    maxWaitingPerQueue: number;
    maxEventLoopDelayMs: number;
    maxHeapUsedBytes: number;
    maxRssBytes: number;
  };
  /**
   * API keys as configured (parsed and hashed by the API at start-up), and JWT bearer tokens when
   * on; neither: the API is open.
   */
  auth: { apiKeys?: string; keysFile?: string; jwt?: JwtConfig };
  sync: { defaultWaitMs: number; maxWaitMs: number };
  jobs: {
    attempts: number;
    backoffMs: number;
    retentionSeconds: number;
    retentionCount: number;
    /** Queued jobs of a backend without a live worker this long are moved or failed; 0: never. */
    orphanedAfterSeconds: number;
    /** Most async jobs runnable in a backend's queue at once (see FairScheduler). */
    fairWindow: number;
  };
  /** Job event streams (GET /jobs/{id}/events). */
  jobEvents: {
    /** Heartbeat comment (and re-read of the job) interval of each open stream. */
    heartbeatMs: number;
    /** Longest life of one stream connection, in seconds. */
    maxStreamSeconds: number;
  };
  images: {
    /** Uploaded images are deleted this long after they were stored. */
    retentionDays: number;
    /** Images up to this size travel with their job (in its record) instead of via storage. */
    inlineMaxBytes: number;
  };
  /** Finished results answered again without running the model (see ResultCache). */
  resultCache: {
    /** 0: off. */
    ttlSeconds: number;
    /** `owner`: a key is answered only from its own results; `global`: from anyone's. */
    scope: 'owner' | 'global';
  };
  worker: {
    concurrency: number;
    /** Batching limits for every model; each absent one: the model's registry entry decides. */
    batching: { maxSize?: number; maxDelayMs?: number };
    lockDurationMs: number;
    stalledIntervalMs: number;
    heartbeatMs: number;
  };
  metrics: { workerPort: number };
  stats: { windowSeconds: number };
  /** Usage per key (GET /usage): how long each day's counts are kept. */
  usage: { retentionDays: number };
  /** Absent: the admin routes (queue dashboard) answer 403. */
  admin: { apiKey?: string };
  /** Absent endpoint: no tracing. */
  tracing: { otlpEndpoint?: string };
  webhooks: WebhooksConfig;
  shutdownTimeoutMs: number;
}

export interface WebhooksConfig {
  /**
   * The master secret tenants' derived signing secrets come from. Absent outside production: a
   * development secret kept in Redis.
   */
  secret?: string;
  /** The master secret before `secret`, while it rotates: derived secrets from both sign. */
  previousSecret?: string;
  timeoutMs: number;
  attempts: number;
  backoffMs: number;
  maxDelayMs: number;
  concurrency: number;
  /** Deliveries of one tenant in flight across every webhooks worker; below `concurrency`. */
  tenantConcurrency: number;
  allowPrivate: boolean;
  /** Lower-case host names (or IP literals as written in URLs) exempt from the address check. */
  allowedHosts: string[];
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

const ajv = new Ajv({ allErrors: true, coerceTypes: true, useDefaults: true });
const validateEnv = ajv.compile<Env>(EnvSchema);
const VARIABLES = Object.keys(EnvSchema.properties) as (keyof Env)[];
const FLAGS = new Set(
  VARIABLES.filter((name) => (EnvSchema.properties[name] as { type?: string }).type === 'boolean'),
);
/** Variables whose values never appear in an error message. */
const SECRETS = new Set<string>([
  'API_KEYS',
  'ADMIN_API_KEY',
  'S3_SECRET_KEY',
  'WEBHOOK_SECRET',
  'WEBHOOK_SECRET_PREVIOUS',
]);
const TRUE = /^(true|1|yes|on)$/i;
const FALSE = /^(false|0|no|off)$/i;

/**
 * Reads the service's variables from `env` (by default `process.env`, the only place in the code
 * base that reads it), applies defaults, validates, and returns a frozen {@link Config}. Throws a
 * {@link ConfigError} naming every bad variable. Every value given is checked; what must be given
 * is what `roles` need (by default every role's, for a process that runs them all).
 */
export function loadConfig(
  env: NodeJS.ProcessEnv = process.env,
  roles: readonly ProcessRole[] = PROCESS_ROLES,
): Config {
  const raw: Record<string, string> = {};
  for (const name of VARIABLES) {
    let value = env[name]?.trim();
    if (value && FLAGS.has(name))
      value = TRUE.test(value) ? 'true' : FALSE.test(value) ? 'false' : value;
    if (value) raw[name] = value;
  }
  if (!validateEnv(raw)) {
    const problems = (validateEnv.errors ?? []).map((e) => {
      const name = e.instancePath.slice(1) || String(e.params.missingProperty ?? '');
      const allowed = e.params.allowedValues ? `: ${e.params.allowedValues.join(', ')}` : '';
      const value = SECRETS.has(name) ? '[redacted]' : JSON.stringify(env[name] ?? '');
      return `${name}=${value}: ${e.message}${allowed}`;
    });
    throw new ConfigError(`Invalid configuration:\n  ${[...new Set(problems)].join('\n  ')}`);
  }
  const missing = missingForRoles(raw as unknown as Env, roles);
  if (missing.length > 0) {
    throw new ConfigError(`Invalid configuration:\n  ${missing.join('\n  ')}`);
  }
  return deepFreeze(toConfig(raw as unknown as Env));
}

function toConfig(e: Env): Config {
  const check = (ok: boolean, message: string) => {
    if (!ok) throw new ConfigError(`Invalid configuration:\n  ${message}`);
  };
  check(
    e.SYNC_WAIT_SECONDS <= e.SYNC_WAIT_MAX_SECONDS,
    `SYNC_WAIT_SECONDS=${e.SYNC_WAIT_SECONDS} must not exceed SYNC_WAIT_MAX_SECONDS=${e.SYNC_WAIT_MAX_SECONDS}`,
  );
  check(
    !e.WEBHOOK_SECRET_PREVIOUS || Boolean(e.WEBHOOK_SECRET),
    'WEBHOOK_SECRET_PREVIOUS needs WEBHOOK_SECRET (the new master secret it rotates to)',
  );
  check(
    !e.WEBHOOK_SECRET_PREVIOUS || e.WEBHOOK_SECRET_PREVIOUS !== e.WEBHOOK_SECRET,
    'WEBHOOK_SECRET_PREVIOUS is the same as WEBHOOK_SECRET: give the new secret in WEBHOOK_SECRET',
  );
  check(
    e.WEBHOOK_TENANT_CONCURRENCY < e.WEBHOOK_CONCURRENCY,
    `WEBHOOK_TENANT_CONCURRENCY=${e.WEBHOOK_TENANT_CONCURRENCY} must be below WEBHOOK_CONCURRENCY=${e.WEBHOOK_CONCURRENCY}, or one tenant can take every delivery slot`,
  );
  check(
    Boolean(e.TLS_CERT_FILE) === Boolean(e.TLS_KEY_FILE),
    'TLS_CERT_FILE and TLS_KEY_FILE go together: set both for HTTPS, or neither',
  );
  const trustProxy = parsed('TRUST_PROXY', parseTrustProxy(e.TRUST_PROXY));
  const corsOrigins = parsed('CORS_ORIGINS', parseCorsOrigins(e.CORS_ORIGINS));
  // Its messages name the variable at fault themselves: there are several.
  const tokens = parseJwtConfig(e);
  if ('error' in tokens) throw new ConfigError(`Invalid configuration:\n  ${tokens.error}`);
  const jwt = tokens.value;
  const tensorflowServingUrls = urlList('TENSORFLOW_SERVING_URL', e.TENSORFLOW_SERVING_URL);
  const onnxRuntimeUrls = e.ONNX_RUNTIME_URL ? urlList('ONNX_RUNTIME_URL', e.ONNX_RUNTIME_URL) : [];
  const redisNodes = e.REDIS_URL.split(',').map((url) => url.trim());
  check(
    e.REDIS_CLUSTER || redisNodes.length === 1,
    'REDIS_URL lists several nodes: set REDIS_CLUSTER=true for a Redis Cluster, or give one URL',
  );
  check(
    redisNodes.every((url) => /^rediss?:\/\/\S+$/.test(url)),
    `REDIS_URL: every node must be a redis:// or rediss:// URL`,
  );
  check(
    !e.REDIS_CLUSTER || hashTagOf(e.REDIS_PREFIX) !== undefined,
    `REDIS_PREFIX=${JSON.stringify(e.REDIS_PREFIX)} needs a {hash tag} with REDIS_CLUSTER (e.g. {ai-gateway}): every key of a job must live in one cluster slot`,
  );

  let storage: StorageConfig;
  if (e.S3_ENDPOINT) {
    check(
      Boolean(e.S3_ACCESS_KEY && e.S3_SECRET_KEY),
      'S3_ACCESS_KEY and S3_SECRET_KEY are required when S3_ENDPOINT is set',
    );
    storage = {
      kind: 's3',
      endpoint: e.S3_ENDPOINT,
      bucket: e.S3_BUCKET,
      region: e.S3_REGION,
      accessKeyId: e.S3_ACCESS_KEY!,
      secretAccessKey: e.S3_SECRET_KEY!,
      timeoutMs: e.S3_TIMEOUT_MS,
    };
  } else {
    storage = { kind: 'local', dir: e.LOCAL_STORAGE_DIR, bucket: e.S3_BUCKET };
  }

  return {
    env: e.NODE_ENV,
    logLevel: e.LOG_LEVEL,
    http: {
      host: e.HOST,
      port: e.PORT,
      tls:
        e.TLS_CERT_FILE && e.TLS_KEY_FILE
          ? { certFile: e.TLS_CERT_FILE, keyFile: e.TLS_KEY_FILE }
          : undefined,
      trustProxy,
      corsOrigins,
      requestTimeoutMs: e.REQUEST_TIMEOUT_MS,
    },
    redis: {
      url: e.REDIS_URL,
      prefix: e.REDIS_PREFIX,
      commandTimeoutMs: e.REDIS_TIMEOUT_MS,
      clusterNodes: e.REDIS_CLUSTER ? redisNodes : undefined,
    },
    storage,
    models: { configPath: e.MODELS_CONFIG, repository: e.MODEL_REPOSITORY },
    backends: {
      tensorflowServingUrls,
      onnxRuntimeUrls,
      scaledFromZero: [...new Set((e.AUTOSCALED_BACKENDS?.split(',') ?? []) as BackendKind[])],
      timeoutMs: e.BACKEND_TIMEOUT_MS,
      onnxIntraOpThreads: e.ONNX_INTRA_OP_THREADS,
      onnxInferenceThread: e.ONNX_INFERENCE_THREAD,
      connectionsPerReplica: e.BACKEND_CONNECTIONS,
      batchCallsPerReplica: e.BATCH_CALLS_PER_REPLICA,
      healthCheck: { intervalMs: e.HEALTH_CHECK_INTERVAL_MS, timeoutMs: e.HEALTH_CHECK_TIMEOUT_MS },
      breaker: {
        errorThresholdPercent: e.BREAKER_ERROR_THRESHOLD,
        volumeThreshold: e.BREAKER_VOLUME_THRESHOLD,
        windowMs: e.BREAKER_WINDOW_MS,
        resetMs: e.BREAKER_RESET_MS,
      },
    },
    rateLimit: {
      enabled: e.RATE_LIMIT_ENABLED,
      max: e.RATE_LIMIT_REQUESTS,
      windowSeconds: e.RATE_LIMIT_WINDOW,
    },
    uploads: {
      maxBytes: e.MAX_UPLOAD_BYTES,
      maxPixels: e.MAX_IMAGE_PIXELS,
      maxDimension: e.MAX_IMAGE_DIMENSION,
      maxParts: e.MAX_UPLOAD_PARTS,
      maxFieldBytes: e.MAX_FIELD_BYTES,
    },
    admission: {
      maxWaitingPerQueue: e.QUEUE_MAX_WAITING,
      maxEventLoopDelayMs: e.MAX_EVENT_LOOP_DELAY_MS,
      maxHeapUsedBytes: e.MAX_HEAP_USED_BYTES,
      maxRssBytes: e.MAX_RSS_BYTES,
    },
    auth: {
      apiKeys: e.API_KEYS,
      keysFile: e.API_KEYS_FILE,
      jwt,
    },
    sync: { defaultWaitMs: e.SYNC_WAIT_SECONDS * 1000, maxWaitMs: e.SYNC_WAIT_MAX_SECONDS * 1000 },
    jobs: {
      attempts: e.JOB_ATTEMPTS,
      backoffMs: e.JOB_BACKOFF_MS,
      retentionSeconds: e.JOB_RETENTION_SECONDS,
      retentionCount: e.JOB_RETENTION_COUNT,
      orphanedAfterSeconds: e.ORPHANED_JOB_TIMEOUT_SECONDS,
      fairWindow: e.FAIR_QUEUE_WINDOW,
    },
    jobEvents: {
      heartbeatMs: e.JOB_EVENTS_HEARTBEAT_MS,
      maxStreamSeconds: e.JOB_EVENTS_MAX_SECONDS,
    },
    images: { retentionDays: e.IMAGE_RETENTION_DAYS, inlineMaxBytes: e.INLINE_IMAGE_MAX_BYTES },
    resultCache: { ttlSeconds: e.RESULT_CACHE_TTL_SECONDS, scope: e.RESULT_CACHE_SCOPE },
    worker: {
      concurrency: e.WORKER_CONCURRENCY,
      batching: {
        maxSize: e.BATCH_MAX_SIZE,
        maxDelayMs: e.BATCH_MAX_DELAY_MS,
      },
      lockDurationMs: e.WORKER_LOCK_DURATION_MS,
      stalledIntervalMs: e.WORKER_STALLED_INTERVAL_MS,
      heartbeatMs: e.WORKER_HEARTBEAT_MS,
    },
    metrics: { workerPort: e.WORKER_METRICS_PORT },
    stats: { windowSeconds: e.STATS_WINDOW_SECONDS },
    usage: { retentionDays: e.USAGE_RETENTION_DAYS },
    admin: e.ADMIN_API_KEY ? { apiKey: e.ADMIN_API_KEY } : {},
    tracing: e.OTEL_EXPORTER_OTLP_ENDPOINT ? { otlpEndpoint: e.OTEL_EXPORTER_OTLP_ENDPOINT } : {},
    webhooks: {
      secret: e.WEBHOOK_SECRET,
      previousSecret: e.WEBHOOK_SECRET_PREVIOUS,
      timeoutMs: e.WEBHOOK_TIMEOUT_MS,
      attempts: e.WEBHOOK_ATTEMPTS,
      backoffMs: e.WEBHOOK_BACKOFF_MS,
      maxDelayMs: e.WEBHOOK_MAX_DELAY_MS,
      concurrency: e.WEBHOOK_CONCURRENCY,
      tenantConcurrency: e.WEBHOOK_TENANT_CONCURRENCY,
      allowPrivate: e.WEBHOOK_ALLOW_PRIVATE,
      allowedHosts: (e.WEBHOOK_ALLOWED_HOSTS ?? '')
        .split(',')
        .map((h) => h.trim().toLowerCase())
        .filter(Boolean),
    },
    shutdownTimeoutMs: e.SHUTDOWN_TIMEOUT_MS,
  };
}

function parsed<T>(name: string, result: Parsed<T>): T {
  if ('error' in result)
    throw new ConfigError(`Invalid configuration:\n  ${name}: ${result.error}`);
  return result.value;
}

/**
 * The part of a key Redis Cluster hashes: what lies between the first `{` and the next `}`, when
 * that is not empty. Every key starts with the prefix, so a tag there puts them all in one slot.
 */
function hashTagOf(prefix: string): string | undefined {
  const open = prefix.indexOf('{');
  const close = open === -1 ? -1 : prefix.indexOf('}', open + 1);
  return close > open + 1 ? prefix.slice(open + 1, close) : undefined;
}

function urlList(name: string, value: string): string[] {
  const urls = value
    .split(',')
    .map((u) => u.trim().replace(/\/+$/, ''))
    .filter(Boolean);
  if (urls.length === 0) {
    throw new ConfigError(`Invalid configuration:\n  ${name}: list at least one http(s) URL`);
  }
  for (const url of urls) {
    if (!/^https?:\/\/[^\s/]+(\/\S*)?$/.test(url)) {
      throw new ConfigError(`Invalid configuration:\n  ${name}: "${url}" is not an http(s) URL`);
    }
  }
  return urls;
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const inner of Object.values(value)) deepFreeze(inner);
    Object.freeze(value);
  }
  return value;
}
