import { randomUUID } from 'node:crypto';
import type { Tracer } from '@opentelemetry/api';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Config } from '../shared/config/config.js';
import type { TrustProxy } from '../shared/config/http-options.js';
import type { Logger } from '../shared/logging/logger.js';
import type { ModelRegistry } from '../shared/models/registry.js';
import type { RedisClient } from '../shared/redis/redis.js';
import type { StatsStore } from '../shared/stats/stats-store.js';
import type { ObjectStore } from '../shared/storage/index.js';
import type { UsageLedger } from '../shared/usage/usage-ledger.js';
import type { WebhookSigningSecrets } from '../shared/webhooks/signing-secrets.js';
import { TargetPolicy } from '../shared/webhooks/target-policy.js';
import { QueueAdmission } from './admission/queue-admission.js';
import type { ApiKeyRing } from './auth/api-key-ring.js';
import { Authenticator } from './auth/authenticator.js';
import { TokenVerifier } from './auth/token-verifier.js';
import { sharedCheck } from './health/shared-check.js';
import { AccessLogController } from './http/access-log.js';
import { errors } from './http/errors.js';
import { apiServerFactory, clientErrorHandler } from './http/http-server.js';
import { SubmissionReader } from './http/submission.js';
import type { JobCanceller } from './jobs/job-canceller.js';
import type { JobEventStreams } from './jobs/job-event-stream.js';
import type { JobLookup } from './jobs/job-lookup.js';
import type { JobSubmitter } from './jobs/job-submitter.js';
import type { ApiMetrics } from './metrics/api-metrics.js';
import { authPlugin } from './plugins/auth.js';
import { corsPlugin } from './plugins/cors.js';
import { loadSheddingPlugin } from './plugins/load-shedding.js';
import { multipartPlugin } from './plugins/multipart.js';
import { docsPlugin, openApiPlugin } from './plugins/openapi.js';
import { frameworkErrorHandler, problemDetailsPlugin } from './plugins/problem-details.js';
import { queueDashboardPlugin } from './plugins/queue-dashboard.js';
import { rateLimitPlugin } from './plugins/rate-limit.js';
import { requestMetricsPlugin } from './plugins/request-metrics.js';
import { requestTracingPlugin } from './plugins/request-tracing.js';
import { securityHeadersPlugin } from './plugins/security-headers.js';
import type { QueueSet } from './queues/queue-set.js';
import type { QuotaCounters } from './quotas/quota-counters.js';
import { RateLimitCounters } from './rate-limit/rate-limit-clients.js';
import { adminRoutes } from './routes/admin.js';
import { healthRoutes } from './routes/health.js';
import { jobRoutes } from './routes/jobs.js';
import { metricsRoutes } from './routes/metrics.js';
import { modelRoutes } from './routes/models.js';
import { predictRoutes } from './routes/predict.js';
import { statsRoutes } from './routes/stats.js';
import { usageRoutes } from './routes/usage.js';
import { webhookRoutes } from './routes/webhooks.js';
import type { BackendStatusCache } from './routing/backend-status-cache.js';
import type { ModelRouter } from './routing/router.js';

/** Everything the HTTP layer uses, built by the caller (server.ts in production, tests otherwise). */
export interface AppDeps {
  config: Config;
  logger: Logger;
  registry: ModelRegistry;
  router: ModelRouter;
  /** Makes the jobs of POST /predict and POST /jobs. */
  submitter: JobSubmitter;
  /** Reads jobs: GET /jobs, GET /jobs/{id}, and a sync answer that outlived its wait. */
  jobs: JobLookup;
  /** DELETE /jobs/{id}. */
  canceller: JobCanceller;
  /** GET /jobs/{id}/events: the open streams, ended when the app closes. */
  jobEvents: JobEventStreams;
  backendStatus: BackendStatusCache;
  redis: RedisClient;
  store: ObjectStore;
  queueSet: QueueSet;
  metrics: ApiMetrics;
  stats: StatsStore;
  /** Usage per tenant and day (GET /usage). */
  usage: UsageLedger;
  /** Quota counters (GET /usage/quotas, DELETE /admin/quotas/{tenant}). */
  quotas: QuotaCounters;
  /** The API keys; none: tenant routes are open. */
  keys: ApiKeyRing;
  /** Each tenant's webhook signing secrets, shown to that tenant only. */
  webhookSecrets: WebhookSigningSecrets;
  /** Set when tracing is on: a server span per request. */
  tracer?: Tracer;
  /** True once shutdown has begun. */
  isClosing(): boolean;
}

const REQUEST_ID = /^[\w.:-]{1,128}$/;
const rateLimitNameSpace = (prefix: string) => `${prefix}:rate-limit:`;
const DASHBOARD_PATH = '/admin/queues';
/** Bound on reading every queue's counts for a scrape or GET /stats. */
const QUEUE_COUNTS_TIMEOUT_MS = 1000;
/** How long a health probe's Redis and storage answers are reused by the probes that follow. */
const HEALTH_CHECK_REUSE_MS = 1000;

export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  const { config } = deps;
  const app = Fastify({
    loggerInstance: deps.logger as FastifyBaseLogger,
    // A caller's X-Request-Id is kept when it is sane, so one id follows a request across systems.
    genReqId: (req) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
    },
    logController: new AccessLogController({ requestIdLogLabel: 'requestId' }),
    return503OnClosing: false,
    serverFactory: apiServerFactory(config.http),
    clientErrorHandler: clientErrorHandler(deps.logger),
    frameworkErrors: frameworkErrorHandler,
    // Only the configured proxies' X-Forwarded-For is believed; by default none, so request.ip is
    // the TCP peer and a forged header changes nothing (not the rate limit, not the logs).
    trustProxy: trustProxy(config.http.trustProxy),
    bodyLimit: 64 * 1024,
    // An unknown query parameter is refused (400), as an unknown multipart field is, rather than
    // silently dropped: a misspelt `top_k` should not quietly use the default.
    ajv: { customOptions: { removeAdditional: false } },
  });
  app.decorateRequest('jobId', null);
  app.addHook('onRequest', async (request, reply) => {
    reply.header('x-request-id', request.id);
    if (deps.isClosing() && !request.url.startsWith('/health')) throw new errors.SHUTTING_DOWN();
  });
  // While draining, answers close their keep-alive connection, or the HTTP server would wait for
  // idle clients to hang up before it can finish closing.
  app.addHook('onSend', async (_request, reply) => {
    if (deps.isClosing()) reply.header('connection', 'close');
  });

  await app.register(problemDetailsPlugin, { maxUploadBytes: config.uploads.maxBytes });
  // First, so a request refused by anything after (shed, limited, unauthenticated) is traced too.
  if (deps.tracer) await app.register(requestTracingPlugin, { tracer: deps.tracer });
  // Before any route, so the document sees them all.
  await app.register(openApiPlugin, { dashboardPath: DASHBOARD_PATH });
  await app.register(loadSheddingPlugin, config.admission);
  const { corsOrigins } = config.http;
  if (corsOrigins === '*' || corsOrigins.length > 0) {
    await app.register(corsPlugin, { origins: corsOrigins });
  }
  await app.register(securityHeadersPlugin);
  await app.register(requestMetricsPlugin, { metrics: deps.metrics, stats: deps.stats });
  if (config.rateLimit.enabled) {
    await app.register(rateLimitPlugin, {
      config: config.rateLimit,
      redis: deps.redis,
      nameSpace: rateLimitNameSpace(config.redis.prefix),
      onExceeded: (request) => deps.metrics.recordRateLimited(request.routeOptions.url),
    });
  }
  const { jwt } = config.auth;
  const authenticator = new Authenticator(
    deps.keys,
    config.admin.apiKey,
    jwt ? new TokenVerifier(jwt) : undefined,
  );
  // After the rate limiter: its hook runs first, so refused credentials count against their address.
  await app.register(authPlugin, { authenticator });
  await app.register(multipartPlugin, config.uploads);

  const submissions = new SubmissionReader({
    config,
    router: deps.router,
    policy: new TargetPolicy(config.webhooks),
    admission: new QueueAdmission(deps.backendStatus, config.admission.maxWaitingPerQueue),
  });
  await app.register(predictRoutes, {
    config,
    submissions,
    submitter: deps.submitter,
    jobs: deps.jobs,
  });
  await app.register(jobRoutes, {
    submissions,
    submitter: deps.submitter,
    jobs: deps.jobs,
    canceller: deps.canceller,
    events: deps.jobEvents,
  });
  await app.register(webhookRoutes, { secrets: deps.webhookSecrets });
  await app.register(modelRoutes, { registry: deps.registry, router: deps.router });
  await app.register(healthRoutes, {
    registry: deps.registry,
    backendStatus: deps.backendStatus,
    checks: {
      redis: sharedCheck(() => deps.redis.ping(), { reuseMs: HEALTH_CHECK_REUSE_MS }),
      storage: sharedCheck(() => deps.store.ping(), { reuseMs: HEALTH_CHECK_REUSE_MS }),
    },
    rateLimiter: config.rateLimit.enabled,
    checkTimeoutMs: 1000,
    isClosing: deps.isClosing,
    isAdmin: async (request) => (await authenticator.identify(request, 'admin')).kind === 'admin',
  });
  await app.register(metricsRoutes, {
    metrics: deps.metrics,
    queues: deps.queueSet,
    registry: deps.registry,
    backendStatus: deps.backendStatus,
    queueTimeoutMs: QUEUE_COUNTS_TIMEOUT_MS,
  });
  await app.register(statsRoutes, {
    stats: deps.stats,
    queues: deps.queueSet,
    queueTimeoutMs: QUEUE_COUNTS_TIMEOUT_MS,
    tenants: authenticator,
  });
  await app.register(usageRoutes, {
    usage: deps.usage,
    quotas: deps.quotas,
    keys: deps.keys,
    tenants: authenticator,
  });
  await app.register(queueDashboardPlugin, { queues: deps.queueSet, basePath: DASHBOARD_PATH });
  await app.register(docsPlugin);
  await app.register(adminRoutes, {
    tenants: authenticator,
    counters: new RateLimitCounters(deps.redis, rateLimitNameSpace(config.redis.prefix)),
    quotas: deps.quotas,
  });
  return app;
}

/** Fastify takes a hop count as a function (its types have no number form). */
function trustProxy(
  setting: TrustProxy,
): boolean | string[] | ((address: string, hop: number) => boolean) {
  return typeof setting === 'number' ? (_address, hop) => hop < setting : setting;
}
