import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { withCause } from '../../shared/errors/index.js';
import type { StatsScope, StatsStore } from '../../shared/stats/stats-store.js';
import type { Authenticator } from '../auth/authenticator.js';
import { errors } from '../http/errors.js';
import { readableTenant } from '../http/owner.js';
import { ProblemResponses } from '../http/schemas.js';
import { type QueueCounts, readQueueCounts } from '../queues/queue-counts.js';
import type { QueueSet } from '../queues/queue-set.js';

export interface StatsRoutesOptions {
  stats: StatsStore;
  queues: QueueSet;
  queueTimeoutMs: number;
  /** Who can be a tenant, for the admin's `?tenant=`. */
  tenants: Pick<Authenticator, 'isTenant'>;
}

const Details = Type.Object({}, { additionalProperties: true });
const StatsSchema = Type.Object({
  uptime_seconds: Type.Integer({ description: "The answering process's own." }),
  tenant: Type.Union([Type.String(), Type.Null()], {
    description: "Whose figures these are: the asking key's tenant; null: everyone's.",
  }),
  since: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  totals: Details,
  window: Details,
  queues: Type.Optional(
    Type.Record(Type.String(), Type.Record(Type.String(), Type.Integer()), {
      description: 'Every queue, all tenants together: for the admin key only.',
    }),
  ),
});

const StatsQuerySchema = Type.Object(
  {
    tenant: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 64,
        description: 'One tenant (an API key id, or `anonymous`): the admin key only.',
      }),
    ),
  },
  { additionalProperties: false },
);

/**
 * GET /stats: request and job totals per backend and model, the recent window's rate, error rate
 * and latency percentiles. A tenant reads its own figures; the admin key reads everyone's and the
 * queue counts (which hold every tenant's jobs), or one tenant's with `?tenant=`. Everything but
 * `uptime_seconds` is read from Redis, so every API instance answers the same.
 */
export const statsRoutes: FastifyPluginAsyncTypebox<StatsRoutesOptions> = async (app, opts) => {
  const startedAt = Date.now();

  app.get(
    '/stats',
    {
      config: { auth: 'tenant-or-admin' },
      schema: {
        summary: 'Request and job totals, recent rates, error rates and latency percentiles',
        description:
          "A tenant's key reads its own figures. The admin key reads everyone's, with the queue counts, or one tenant's with `?tenant=`.",
        tags: ['observability'],
        querystring: StatsQuerySchema,
        response: { 200: StatsSchema, ...ProblemResponses },
      },
    },
    async (request) => {
      const admin = request.principal?.kind === 'admin';
      const tenant = readableTenant(request, opts.tenants);
      const scope: StatsScope = tenant === undefined ? {} : { tenant };
      const [snapshot, queues] = await Promise.all([
        opts.stats.read(scope),
        admin ? readQueueCounts(opts.queues, opts.queueTimeoutMs) : undefined,
      ]).catch((err: Error) => {
        throw withCause(new errors.QUEUE_UNAVAILABLE(), err);
      });
      return {
        uptime_seconds: Math.round((Date.now() - startedAt) / 1000),
        tenant: scope.tenant ?? null,
        ...snapshot,
        queues: queues && Object.fromEntries(queues as QueueCounts),
      };
    },
  );
};
