import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { type Static, Type } from '@sinclair/typebox';
import type { FastifyRequest } from 'fastify';
import { backendServing, summarizeReplicas } from '../../shared/backends/backend-health.js';
import type { BackendSnapshot } from '../../shared/backends/backend-status.js';
import { BACKEND_KINDS, type BackendKind } from '../../shared/models/model-spec.js';
import type { ModelRegistry } from '../../shared/models/registry.js';
import type { BackendStatusCache } from '../routing/backend-status-cache.js';

export interface HealthRoutesOptions {
  registry: ModelRegistry;
  backendStatus: BackendStatusCache;
  /** Round trips that prove a dependency answers; each is bounded by `checkTimeoutMs`. */
  checks: { redis(): Promise<unknown>; storage(): Promise<unknown> };
  /** Whether the rate limiter is on; it fails open while Redis is down, which /health shows. */
  rateLimiter: boolean;
  checkTimeoutMs: number;
  /** True once shutdown has begun: readiness fails so load balancers stop sending traffic. */
  isClosing(): boolean;
  /** Whether the request presents the admin key: it gets GET /health's operator details. */
  isAdmin(request: FastifyRequest): Promise<boolean>;
}

type Probe = 'up' | 'down';

const ProbeSchema = Type.Union([Type.Literal('up'), Type.Literal('down')]);
const LiveSchema = Type.Object({ status: Type.Literal('ok') });
const ReadySchema = Type.Object({
  status: Type.Union([Type.Literal('ready'), Type.Literal('not_ready')]),
  redis: ProbeSchema,
  storage: ProbeSchema,
});
const Details = Type.Object({}, { additionalProperties: true });
const BackendPictureSchema = Type.Object(
  {
    up: Type.Boolean(),
    reason: Type.Optional(Type.String()),
    workers: Type.Integer(),
    replicas: Type.Optional(
      Type.Array(Details, {
        description:
          'Each server, in configured order: healthy and circuit state; with the admin key also its URL, requests in flight and last error.',
      }),
    ),
    queue_depth: Type.Optional(Type.Integer()),
    models: Type.Record(Type.String(), Details, {
      description:
        'Per model: state and versions; with the admin key also why not (`reason`, `detail`: file paths, server answers) and per server.',
    }),
  },
  { additionalProperties: true },
);
const HealthSchema = Type.Object({
  status: Type.Union([
    Type.Literal('healthy'),
    Type.Literal('degraded'),
    Type.Literal('unhealthy'),
  ]),
  services: Type.Object({
    backends: Type.Record(Type.String(), Type.Boolean()),
    rate_limiter: Type.Union(
      [Type.Literal('enabled'), Type.Literal('disabled'), Type.Literal('degraded (fail open)')],
      { description: 'While Redis is down the limiter lets requests through.' },
    ),
    redis: ProbeSchema,
    storage: ProbeSchema,
  }),
  backends: Type.Record(Type.String(), BackendPictureSchema),
  status_age_ms: Type.Number(),
  uptime_seconds: Type.Integer(),
});
const tags = ['health'];

/** GET /health, whether healthy (200) or not (503). */
export type HealthReport = Static<typeof HealthSchema>;

/**
 * GET /health (the seed's shape, for people), /health/live and /health/ready (for orchestrators).
 * Anyone may read GET /health, so it says what is up and nothing of where things are: server URLs,
 * their errors and model file paths are for the admin key only (the same body, with details).
 * A backend is up when a live worker reaches at least one of its servers (in-process: always).
 * Unhealthy (503) when Redis or storage is down, or no backend that serves registered models is
 * up, since nothing can be served; degraded when one of them is down, or one of their servers is
 * down or has its circuit open or half-open.
 */
export const healthRoutes: FastifyPluginAsyncTypebox<HealthRoutesOptions> = async (app, opts) => {
  const startedAt = Date.now();
  const probe = (check: () => Promise<unknown>): Promise<Probe> =>
    withTimeout(check(), opts.checkTimeoutMs).then(
      () => 'up',
      () => 'down',
    );

  // Orchestrators and load balancers probe without keys.
  const config = { auth: 'public' as const };
  app.get(
    '/health/live',
    {
      config,
      schema: { summary: 'The process answers', tags, response: { 200: LiveSchema } },
    },
    async () => ({ status: 'ok' as const }),
  );

  app.get(
    '/health/ready',
    {
      config,
      schema: {
        summary: 'The instance can take work (Redis and storage answer, not shutting down)',
        tags,
        response: { 200: ReadySchema, 503: ReadySchema },
      },
    },
    async (_request, reply) => {
      const [redis, storage] = await Promise.all([
        probe(opts.checks.redis),
        probe(opts.checks.storage),
      ]);
      const ready = redis === 'up' && storage === 'up' && !opts.isClosing();
      return reply
        .code(ready ? 200 : 503)
        .send({ status: ready ? 'ready' : 'not_ready', redis, storage });
    },
  );

  app.get(
    '/health',
    {
      config,
      schema: {
        summary: 'Health of the service, its dependencies and its backends',
        tags,
        response: { 200: HealthSchema, 503: HealthSchema },
      },
    },
    async (request, reply) => {
      const [redis, storage] = await Promise.all([
        probe(opts.checks.redis),
        probe(opts.checks.storage),
      ]);
      const used = BACKEND_KINDS.filter((b) => opts.registry.servedBy(b).length > 0);
      const pictures = {} as Record<BackendKind, BackendPicture>;
      for (const b of BACKEND_KINDS) pictures[b] = picture(opts.backendStatus.snapshot(b));
      const backends = Object.fromEntries(BACKEND_KINDS.map((b) => [b, pictures[b].up])) as Record<
        BackendKind,
        boolean
      >;
      const impaired = used.some((b) =>
        (pictures[b].replicas ?? []).some((r) => !r.healthy || r.circuit !== 'closed'),
      );
      const status =
        redis === 'down' || storage === 'down' || used.every((b) => !backends[b])
          ? 'unhealthy'
          : used.some((b) => !backends[b]) || impaired
            ? 'degraded'
            : 'healthy';
      return reply.code(status === 'unhealthy' ? 503 : 200).send({
        status,
        services: {
          backends,
          rate_limiter: !opts.rateLimiter
            ? 'disabled'
            : redis === 'up'
              ? 'enabled'
              : 'degraded (fail open)',
          redis,
          storage,
        },
        backends: (await opts.isAdmin(request)) ? pictures : publicPictures(pictures),
        status_age_ms: opts.backendStatus.ageMs,
        uptime_seconds: Math.round((Date.now() - startedAt) / 1000),
      });
    },
  );
};

type BackendPicture = ReturnType<typeof picture>;

/** One backend in /health: up or why not, its workers, its servers (remote), queue, models. */
function picture(snapshot: BackendSnapshot) {
  const serving = backendServing(snapshot);
  const replicas = summarizeReplicas(snapshot.workers);
  return {
    up: serving.serving,
    reason: serving.serving ? undefined : serving.reason,
    workers: snapshot.workers.length,
    replicas: replicas.length > 0 ? replicas : undefined,
    queue_depth: snapshot.queueDepth,
    models: snapshot.models,
  };
}

/**
 * The backends as anyone may see them: whether each server is healthy and its circuit, by its place
 * in the list; each model's state and versions. No URL, no server error, no reason (reasons are in
 * GET /models for clients), no detail.
 */
function publicPictures(pictures: Record<BackendKind, BackendPicture>) {
  return Object.fromEntries(
    Object.entries(pictures).map(([backend, { replicas, models, ...picture }]) => [
      backend,
      {
        ...picture,
        replicas: replicas?.map(({ healthy, circuit }) => ({ healthy, circuit })),
        models: Object.fromEntries(
          Object.entries(models).map(([name, { state, versions }]) => [name, { state, versions }]),
        ),
      },
    ]),
  );
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
