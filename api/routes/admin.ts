import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { withCause } from '../../shared/errors/index.js';
import type { Authenticator } from '../auth/authenticator.js';
import { errors } from '../http/errors.js';
import { ProblemResponses } from '../http/schemas.js';
import { authScope } from '../plugins/auth.js';
import type { QuotaCounters } from '../quotas/quota-counters.js';
import { parseClient, type RateLimitCounters } from '../rate-limit/rate-limit-clients.js';

export interface AdminRoutesOptions {
  /** Who can be a tenant: the configured key ids and, with tokens on, any valid tenant id. */
  tenants: Pick<Authenticator, 'isTenant'>;
  counters: RateLimitCounters;
  quotas: QuotaCounters;
}

const ClientParamsSchema = Type.Object({
  client: Type.String({
    minLength: 1,
    maxLength: 64,
    description:
      'A tenant (an API key id or a token tenant), or the IP address of a client without either.',
  }),
});

const ResetSchema = Type.Object({
  client: Type.String({ description: 'The client as given.' }),
  kind: Type.Union([Type.Literal('key'), Type.Literal('ip')]),
  counted: Type.Integer({ description: 'Requests counted in its window before the reset.' }),
});

/**
 * Operator routes under /admin, behind the admin key. `DELETE /admin/rate-limits/{client}` resets
 * a client's rate-limit counter in Redis, for every API instance at once: its next request starts
 * a fresh window. `DELETE /admin/quotas/{tenant}` does the same for a tenant's quota.
 */
export const adminRoutes: FastifyPluginAsyncTypebox<AdminRoutesOptions> = async (app, opts) => {
  await app.register(authScope, { mode: 'admin' });

  app.delete(
    '/admin/rate-limits/:client',
    {
      schema: {
        summary: "Reset a client's rate limit",
        description:
          "Clears the counter of an API key (by id) or of an address (clients without a key; IPv6 by its /64) in Redis, for every API instance: the client's next request starts a fresh window.",
        tags: ['admin'],
        params: ClientParamsSchema,
        response: { 200: ResetSchema, ...ProblemResponses },
      },
    },
    async (request) => {
      const client = parseClient(request.params.client, opts.tenants);
      if (!client) throw new errors.API_KEY_NOT_FOUND(request.params.client);
      const counted = await opts.counters.reset(client).catch((err: Error) => {
        throw withCause(new errors.QUEUE_UNAVAILABLE(), err);
      });
      request.log.info({ client: request.params.client, counted }, 'rate limit reset');
      return { client: request.params.client, kind: client.kind, counted };
    },
  );

  app.delete(
    '/admin/quotas/:tenant',
    {
      schema: {
        summary: "Reset a key's quota",
        description:
          "Clears the tenant's quota counters of the current UTC day and month, for every API instance: its next submission starts from a full quota. Usage (GET /usage) is not changed.",
        tags: ['admin'],
        params: TenantParamsSchema,
        response: { 200: QuotaResetSchema, ...ProblemResponses },
      },
    },
    async (request) => {
      const { tenant } = request.params;
      if (!opts.tenants.isTenant(tenant)) throw new errors.API_KEY_NOT_FOUND(tenant);
      const used = await opts.quotas.reset(tenant).catch((err: Error) => {
        throw withCause(new errors.QUEUE_UNAVAILABLE(), err);
      });
      request.log.info({ tenant, used }, 'quota reset');
      return { tenant, used };
    },
  );
};

const TenantParamsSchema = Type.Object({
  tenant: Type.String({
    minLength: 1,
    maxLength: 64,
    description: 'A tenant: an API key id, or a token tenant.',
  }),
});

const QuotaResetSchema = Type.Object({
  tenant: Type.String(),
  used: Type.Object(
    { images_per_day: Type.Integer(), jobs_per_month: Type.Integer() },
    { description: 'What each counter of the current period held before the reset.' },
  ),
});
