import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { withCause } from '../../shared/errors/index.js';
import { ANONYMOUS_OWNER } from '../../shared/jobs/job-records.js';
import type { UsageLedger } from '../../shared/usage/usage-ledger.js';
import { daysBetween, parseUtcDay, utcDay, utcMonth } from '../../shared/usage/usage-periods.js';
import type { ApiKeyRing } from '../auth/api-key-ring.js';
import type { Authenticator } from '../auth/authenticator.js';
import { errors } from '../http/errors.js';
import { readableTenant } from '../http/owner.js';
import { ProblemResponses } from '../http/schemas.js';
import type { QuotaCounters } from '../quotas/quota-counters.js';
import { quotaHeaders } from '../quotas/quota-headers.js';

export interface UsageRoutesOptions {
  usage: UsageLedger;
  quotas: QuotaCounters;
  /** The configured keys, for the quota of a tenant the admin asks about. */
  keys: Pick<ApiKeyRing, 'byId'>;
  /** Who can be a tenant, for the admin's `?tenant=`. */
  tenants: Pick<Authenticator, 'isTenant'>;
}

/** The longest range GET /usage reads at once: a year, leap day included. */
const MAX_DAYS = 366;

const Figures = Type.Object({
  requests: Type.Integer({ description: 'Accepted submissions that ended.' }),
  images: Type.Integer({ description: 'Images a model ran on to a result.' }),
  jobs: Type.Object({
    succeeded: Type.Integer(),
    failed: Type.Integer(),
    canceled: Type.Integer(),
  }),
  inference_ms: Type.Number({ description: 'Model time of the jobs that succeeded.' }),
  uploaded_bytes: Type.Integer(),
});
const PerModel = Type.Record(Type.String(), Figures);
const UsageSchema = Type.Object({
  from: Type.String({ format: 'date' }),
  to: Type.String({ format: 'date' }),
  tenants: Type.Array(
    Type.Object({
      tenant: Type.String(),
      totals: Figures,
      models: PerModel,
      days: Type.Array(
        Type.Object({ date: Type.String({ format: 'date' }), totals: Figures, models: PerModel }),
        { description: 'Days with any usage, oldest first.' },
      ),
    }),
    { description: "The asking key's own; for the admin key, every tenant with usage, or one." },
  ),
});

const TenantQuery = Type.String({
  minLength: 1,
  maxLength: 64,
  description: 'One tenant (an API key id, a token tenant, or `anonymous`): the admin key only.',
});
const UsageQuerySchema = Type.Object(
  {
    from: Type.Optional(
      Type.String({
        description: 'First UTC day, `YYYY-MM-DD`; default: the first of this month.',
      }),
    ),
    to: Type.Optional(Type.String({ description: 'Last UTC day, `YYYY-MM-DD`; default: today.' })),
    tenant: Type.Optional(TenantQuery),
  },
  { additionalProperties: false },
);

const QuotasSchema = Type.Object({
  tenant: Type.String(),
  quotas: Type.Array(
    Type.Object({
      policy: Type.Union([Type.Literal('images_per_day'), Type.Literal('jobs_per_month')]),
      limit: Type.Integer(),
      used: Type.Integer(),
      remaining: Type.Integer(),
      resets_at: Type.String({ format: 'date-time', description: 'The end of the UTC period.' }),
    }),
    { description: "The key's quota (keys file `quota`); empty: no quota." },
  ),
});
const QuotasQuerySchema = Type.Object(
  { tenant: Type.Optional(TenantQuery) },
  { additionalProperties: false },
);

/**
 * GET /usage: each tenant's usage per UTC day and model, as counted when its jobs ended. GET
 * /usage/quotas: where a key's quota stands. A tenant reads its own; the admin key reads every
 * tenant's usage, or one tenant's (`?tenant=`) usage or quota.
 */
export const usageRoutes: FastifyPluginAsyncTypebox<UsageRoutesOptions> = async (app, opts) => {
  app.get(
    '/usage',
    {
      config: { auth: 'tenant-or-admin' },
      schema: {
        summary: 'Usage per key, per day and model',
        description:
          'Requests, images, jobs by outcome, model time and bytes uploaded, counted once per job on the UTC day it ended. A key reads its own; the admin key reads every tenant, or one with `?tenant=`. At most 366 days at once.',
        tags: ['usage'],
        querystring: UsageQuerySchema,
        response: { 200: UsageSchema, ...ProblemResponses },
      },
    },
    async (request) => {
      const tenant = readableTenant(request, opts.tenants);
      const now = Date.now();
      const from = dayOf('from', request.query.from ?? `${utcMonth(now)}-01`);
      const to = dayOf('to', request.query.to ?? utcDay(now));
      if (from > to) throw new errors.VALIDATION_FAILED('"from" is after "to"');
      const days = daysBetween(from, to);
      if (days.length > MAX_DAYS) {
        throw new errors.VALIDATION_FAILED(`Ask for at most ${MAX_DAYS} days at once`);
      }
      const tenants = await opts.usage.read(days, tenant).catch((err: Error) => {
        throw withCause(new errors.QUEUE_UNAVAILABLE(), err);
      });
      return { from: utcDay(from), to: utcDay(to), tenants };
    },
  );

  app.get(
    '/usage/quotas',
    {
      config: { auth: 'tenant-or-admin' },
      schema: {
        summary: "Where a key's quota stands",
        description:
          "Each policy of the key's quota in its current UTC period: limit, used, remaining, and when it renews; the same figures as the `RateLimit-Policy` and `RateLimit` headers. The admin key names the tenant with `?tenant=`.",
        tags: ['usage'],
        querystring: QuotasQuerySchema,
        response: { 200: QuotasSchema, ...ProblemResponses },
      },
    },
    async (request, reply) => {
      const admin = request.principal?.kind === 'admin';
      if (admin && request.query.tenant === undefined) {
        throw new errors.VALIDATION_FAILED('Name the tenant: ?tenant=<key id>');
      }
      const tenant = readableTenant(request, opts.tenants) ?? ANONYMOUS_OWNER;
      const quota = admin
        ? opts.keys.byId(tenant)?.quota
        : request.principal?.kind === 'key'
          ? request.principal.quota
          : undefined;
      const now = Date.now();
      const standing = quota
        ? await opts.quotas.standing(tenant, quota, now).catch((err: Error) => {
            throw withCause(new errors.QUEUE_UNAVAILABLE(), err);
          })
        : [];
      reply.headers(quotaHeaders(standing, now));
      return {
        tenant,
        quotas: standing.map((s) => ({
          policy: s.policy,
          limit: s.limit,
          used: s.used,
          remaining: s.remaining,
          resets_at: new Date(s.resetsAt).toISOString(),
        })),
      };
    },
  );
};

function dayOf(name: string, text: string): number {
  const ms = parseUtcDay(text);
  if (ms === undefined) throw new errors.VALIDATION_FAILED(`"${name}" must be a date, YYYY-MM-DD`);
  return ms;
}
