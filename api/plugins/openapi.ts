import swagger, { type FastifyDynamicSwaggerOptions } from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { TSchema } from '@sinclair/typebox';
import type { FastifyInstance, FastifySchema } from 'fastify';
import fp from 'fastify-plugin';
import packageJson from '../../package.json' with { type: 'json' };
import type { AuthMode } from '../auth/authenticator.js';
import { authScope } from './auth.js';
import { uiPages } from './security-headers.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /**
     * Documentation only: the request body as the OpenAPI document shows it, for bodies Fastify
     * does not validate as a schema (multipart uploads, raw images, read by the handler).
     */
    documentedBody?: { content: Record<string, { schema: TSchema }> };
  }
}

export interface OpenApiOptions {
  /** Where the queue dashboard is served; documented as one page, its internals hidden. */
  dashboardPath: string;
}

/** How each kind of route is entered, as OpenAPI security requirements. */
const SECURITY: Record<AuthMode, Record<string, string[]>[]> = {
  public: [],
  tenant: [{ apiKeyBearer: [] }, { apiKeyHeader: [] }],
  admin: [{ adminBearer: [] }, { adminBasic: [] }],
  'tenant-or-admin': [{ apiKeyBearer: [] }, { apiKeyHeader: [] }, { adminBearer: [] }],
};

const DESCRIPTION = `An inference broker: one HTTP API in front of model backends (ONNX Runtime, TensorFlow
Serving). Upload an image to \`POST /predict/{model}\` and wait for the answer, or submit it to
\`POST /jobs\` and poll \`GET /jobs/{id}\` or receive a signed webhook.

Every error is an RFC 9457 problem (\`application/problem+json\`) with a stable \`code\`. Send your API
key as \`Authorization: Bearer <key>\` or \`X-API-Key: <key>\`, or, where the server takes tokens, a JWT
as \`Authorization: Bearer <jwt>\`; the admin routes take the admin key or a token with the admin scope.`;

/**
 * The OpenAPI 3.1 document, generated from the routes' JSON schemas (@fastify/swagger, registered
 * before any route so it sees them all). Each operation's security follows its route's `auth`
 * mode; bodies that are read by the handler rather than validated (uploads) are documented from
 * `config.documentedBody`; the dashboard's internal routes and the docs' own files are left out.
 */
export const openApiPlugin = fp(
  async (app: FastifyInstance, opts: OpenApiOptions) => {
    const dashboardInternals = `${opts.dashboardPath}/`;
    const options: FastifyDynamicSwaggerOptions = {
      openapi: {
        openapi: '3.1.0',
        info: { title: 'ai-gateway', version: packageJson.version, description: DESCRIPTION },
        components: {
          securitySchemes: {
            apiKeyBearer: {
              type: 'http',
              scheme: 'bearer',
              description: 'Your API key, or a JWT where the server takes tokens.',
            },
            apiKeyHeader: {
              type: 'apiKey',
              in: 'header',
              name: 'X-API-Key',
              description: 'Your API key.',
            },
            adminBearer: {
              type: 'http',
              scheme: 'bearer',
              description: 'The admin key (ADMIN_API_KEY), or a JWT with the admin scope.',
            },
            adminBasic: {
              type: 'http',
              scheme: 'basic',
              description: 'The admin key as the password, any user name (for browsers).',
            },
          },
        },
        security: SECURITY.tenant,
      },
      // Components are named by their $id (JobResource, Problem), not def-0, def-1.
      refResolver: {
        buildLocalReference: (json, _baseUri, _fragment, i) => String(json.$id ?? `def-${i}`),
      },
      transform: ({ schema, url, route }) => {
        const dashboardPage = url === opts.dashboardPath || url === dashboardInternals;
        if (!dashboardPage && url.startsWith(dashboardInternals)) {
          return { schema: { ...schema, hide: true }, url };
        }
        const auth = route.config?.auth ?? 'tenant';
        const documented: FastifySchema & Record<string, unknown> = {
          ...schema,
          // bull-board hides its routes; its page is documented as one route.
          ...(dashboardPage ? { ...DASHBOARD_PAGE, hide: false } : {}),
          security: SECURITY[auth],
          body: route.config?.documentedBody ?? schema?.body,
        };
        return { schema: documented, url: dashboardPage ? opts.dashboardPath : url };
      },
    };
    await app.register(swagger, options);
  },
  { name: 'openapi' },
);

const DASHBOARD_PAGE = {
  summary: 'The queue dashboard (bull-board)',
  tags: ['admin'],
  response: {
    200: {
      description: 'The dashboard page',
      content: { 'text/html': { schema: { type: 'string' } } },
    },
  },
};

/**
 * `GET /docs`: Swagger UI over the document, which is at `GET /docs/json` (and `/docs/yaml`).
 * Public, and served under the HTML pages' content policy.
 */
export async function docsPlugin(app: FastifyInstance) {
  await app.register(authScope, { mode: 'public' });
  await app.register(uiPages);
  await app.register(swaggerUi, {
    routePrefix: '/docs',
    uiConfig: { docExpansion: 'list', deepLinking: true, validatorUrl: null },
  });
}
