import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { WebhookSigningSecrets } from '../../shared/webhooks/signing-secrets.js';
import { ownerOf } from '../http/owner.js';
import { ProblemResponses } from '../http/schemas.js';

export interface WebhookRoutesOptions {
  secrets: Pick<WebhookSigningSecrets, 'of'>;
}

const Secret = (description: string) => Type.String({ pattern: '^whsec_', description });
const WebhookSecretSchema = Type.Object(
  {
    tenant: Type.String({ description: 'Whose secret this is: your API key id.' }),
    secret: Secret('The current Standard Webhooks secret: verify your webhooks with it.'),
    previous: Type.Union(
      [Secret('The secret before it, still signing while a rotation is under way.'), Type.Null()],
      {
        description: 'During a rotation, the secret before: every message carries both signatures.',
      },
    ),
    source: Type.Union([Type.Literal('keys_file'), Type.Literal('derived')], {
      description:
        '`keys_file`: set for your key by the operator; `derived`: derived from the master secret and your key id.',
    }),
  },
  { $id: 'WebhookSecret' },
);

/**
 * GET /webhooks/secret: the caller's own webhook signing secret(s), and nobody else's. Each
 * tenant's webhooks are signed with secrets of its own, so holding one lets a receiver verify its
 * own messages and forge no one else's.
 */
export const webhookRoutes: FastifyPluginAsyncTypebox<WebhookRoutesOptions> = async (app, opts) => {
  app.get(
    '/webhooks/secret',
    {
      schema: {
        summary: 'Your webhook signing secret',
        description:
          "The Standard Webhooks secret your jobs' webhooks are signed with (`webhook-signature` carries one `v1,` signature per secret). While the API runs open, the one anonymous tenant's.",
        tags: ['webhooks'],
        response: { 200: WebhookSecretSchema, ...ProblemResponses },
      },
    },
    async (request, reply) => {
      const tenant = ownerOf(request);
      const { secrets, source } = opts.secrets.of(tenant);
      // A secret is kept by no cache on the way.
      reply.header('cache-control', 'no-store');
      return { tenant, secret: secrets[0]!, previous: secrets[1] ?? null, source };
    },
  );
};
