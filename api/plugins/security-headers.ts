import helmet from '@fastify/helmet';
import type { FastifyInstance, RouteOptions } from 'fastify';
import fp from 'fastify-plugin';

declare module 'fastify' {
  interface FastifyContextConfig {
    /**
     * @fastify/helmet's per-route settings, as it reads them at request time (its `helmet` route
     * option is copied here by its own onRoute hook, which runs before a scope's).
     */
    helmet?: { contentSecurityPolicy: typeof UI_CSP };
  }
}

/** JSON answers load nothing, are framed nowhere, and are never cached by the way. */
const API_CSP = {
  useDefaults: false,
  directives: {
    defaultSrc: ["'none'"],
    frameAncestors: ["'none'"],
    baseUri: ["'none'"],
    formAction: ["'none'"],
  },
};

/**
 * The HTML pages (the queue dashboard, the API docs): their own scripts only, no inline script;
 * inline styles (bull-board's loading screen, style attributes) and Google's fonts for bull-board's
 * stylesheet; images as data: URIs (Swagger UI's icons). Nothing else, and never framed.
 */
const UI_CSP = {
  useDefaults: false,
  directives: {
    defaultSrc: ["'self'"],
    scriptSrc: ["'self'"],
    styleSrc: ["'self'", "'unsafe-inline'", 'https://fonts.googleapis.com'],
    fontSrc: ["'self'", 'https://fonts.gstatic.com', 'data:'],
    imgSrc: ["'self'", 'data:'],
    connectSrc: ["'self'"],
    objectSrc: ["'none'"],
    baseUri: ["'self'"],
    formAction: ["'self'"],
    frameAncestors: ["'none'"],
  },
};

/**
 * Security headers for a JSON API (@fastify/helmet): a Content-Security-Policy that allows nothing,
 * `X-Content-Type-Options: nosniff`, `X-Frame-Options: DENY`, `Referrer-Policy: no-referrer`,
 * `Strict-Transport-Security` (honoured by browsers over HTTPS only), cross-origin isolation
 * headers; `Cache-Control: no-store` on answers that set no caching of their own (job results are
 * a tenant's data). Routes in a {@link uiPages} scope get a policy their HTML pages can work with.
 */
export const securityHeadersPlugin = fp(
  async (app: FastifyInstance) => {
    await app.register(helmet, {
      contentSecurityPolicy: API_CSP,
      frameguard: { action: 'deny' },
      referrerPolicy: { policy: 'no-referrer' },
      strictTransportSecurity: { maxAge: 31_536_000, includeSubDomains: false },
    });
    app.addHook('onSend', async (_request, reply) => {
      if (!reply.hasHeader('cache-control')) reply.header('cache-control', 'no-store');
    });
  },
  { name: 'security-headers' },
);

/** Makes every route of the scope it is registered in an HTML page (or one of its assets). */
export const uiPages = fp(
  async (app: FastifyInstance) => {
    app.addHook('onRoute', (route: RouteOptions) => {
      route.config = { ...route.config, helmet: { contentSecurityPolicy: UI_CSP } };
    });
  },
  { name: 'ui-pages' },
);
