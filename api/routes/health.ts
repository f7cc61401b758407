import type { FastifyInstance } from 'fastify';
import type { BackendStatusCache } from '../../shared/backends/backend-status-cache.js';
import { BACKEND_KINDS, type BackendKind } from '../../shared/models/model-spec.js';
import type { ModelRegistry } from '../../shared/models/registry.js';

export interface HealthRoutesOptions {
  registry: ModelRegistry;
  backendStatus: BackendStatusCache;
  /** Round trips that prove a dependency answers; each is bounded by `checkTimeoutMs`. */
  checks: { redis(): Promise<unknown>; storage(): Promise<unknown> };
  rateLimiter: 'enabled' | 'disabled';
  checkTimeoutMs: number;
  /** True once shutdown has begun: readiness fails so load balancers stop sending traffic. */
  isClosing(): boolean;
}

type Probe = 'up' | 'down';

/**
 * GET /health (the seed's shape, for people), /health/live and /health/ready (for orchestrators).
 * Unhealthy (503) when Redis or storage is down, since nothing can be accepted; degraded when a
 * backend that serves registered models has no live worker.
 */
export async function healthRoutes(app: FastifyInstance, opts: HealthRoutesOptions) {
  const startedAt = Date.now();
  const probe = (check: () => Promise<unknown>): Promise<Probe> =>
    withTimeout(check(), opts.checkTimeoutMs).then(
      () => 'up',
      () => 'down',
    );

  app.get('/health/live', async () => ({ status: 'ok' }));

  app.get('/health/ready', async (_request, reply) => {
    const [redis, storage] = await Promise.all([
      probe(opts.checks.redis),
      probe(opts.checks.storage),
    ]);
    const ready = redis === 'up' && storage === 'up' && !opts.isClosing();
    return reply
      .code(ready ? 200 : 503)
      .send({ status: ready ? 'ready' : 'not_ready', redis, storage });
  });

  app.get('/health', async (_request, reply) => {
    const [redis, storage] = await Promise.all([
      probe(opts.checks.redis),
      probe(opts.checks.storage),
    ]);
    const used = BACKEND_KINDS.filter((b) => opts.registry.servedBy(b).length > 0);
    const backends = Object.fromEntries(
      BACKEND_KINDS.map((b) => [b, opts.backendStatus.snapshot(b).workers.length > 0]),
    ) as Record<BackendKind, boolean>;
    const detail = Object.fromEntries(
      BACKEND_KINDS.map((b) => {
        const snapshot = opts.backendStatus.snapshot(b);
        return [b, { workers: snapshot.workers.length, models: snapshot.models }];
      }),
    );
    const status =
      redis === 'down' || storage === 'down' || used.every((b) => !backends[b])
        ? 'unhealthy'
        : used.some((b) => !backends[b])
          ? 'degraded'
          : 'healthy';
    return reply.code(status === 'unhealthy' ? 503 : 200).send({
      status,
      services: { backends, rate_limiter: opts.rateLimiter, redis, storage },
      backends: detail,
      status_age_ms: opts.backendStatus.ageMs,
      uptime_seconds: Math.round((Date.now() - startedAt) / 1000),
    });
  });
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (err: unknown) => {
        clearTimeout(timer);
        reject(err);
      },
    );
  });
}
