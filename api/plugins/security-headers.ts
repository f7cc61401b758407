import type { IncomingMessage, ServerResponse } from 'node:http';
import type { FastifyInstance, RouteOptions } from 'fastify';
import fp from 'fastify-plugin';
import helmet, { type HelmetOptions } from 'helmet';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** An HTML page or one of its assets: it gets the pages' Content-Security-Policy. */
    uiPage?: boolean;
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

/** What both kinds of answer share. */
const COMMON: HelmetOptions = {
  frameguard: { action: 'deny' },
  referrerPolicy: { policy: 'no-referrer' },
  strictTransportSecurity: { maxAge: 31_536_000, includeSubDomains: false },
};

/**
 * The headers helmet sets with `options`, worked out once: they depend on nothing in the request.
 * (@fastify/helmet builds helmet's middleware again for every request, a tenth of a millisecond
 * each under load.)
 */
function helmetHeaders(options: HelmetOptions): Record<string, string> {
  const headers: Record<string, string> = {};
  const response = {
    setHeader(name: string, value: string | number | readonly string[]) {
      headers[name.toLowerCase()] = String(value);
    },
    removeHeader(name: string) {
      delete headers[name.toLowerCase()];
    },
  };
  helmet(options)({} as IncomingMessage, response as unknown as ServerResponse, (err?: unknown) => {
    if (err) throw err;
  });
  return headers;
}

export const API_SECURITY_HEADERS = helmetHeaders({ ...COMMON, contentSecurityPolicy: API_CSP });
export const UI_SECURITY_HEADERS = helmetHeaders({ ...COMMON, contentSecurityPolicy: UI_CSP });

/**
 * Security headers for a JSON API (helmet's, computed once): a Content-Security-Policy that allows
 * nothing, `X-Content-Type-Options: nosniff`, `X-Frame-Options: DENY`, `Referrer-Policy:
 * no-referrer`, `Strict-Transport-Security` (honoured by browsers over HTTPS only), cross-origin
 * isolation headers; `Cache-Control: no-store` on answers that set no caching of their own (job
 * results are a tenant's data). Routes in a {@link uiPages} scope get a policy their HTML pages can
 * work with.
 */
export const securityHeadersPlugin = fp(
  async (app: FastifyInstance) => {
    app.addHook('onRequest', (request, reply, done) => {
      reply.headers(
        request.routeOptions.config.uiPage ? UI_SECURITY_HEADERS : API_SECURITY_HEADERS,
      );
      done();
    });
    app.addHook('onSend', (_request, reply, payload, done) => {
      if (!reply.hasHeader('cache-control')) reply.header('cache-control', 'no-store');
      done(null, payload);
    });
  },
  { name: 'security-headers' },
);

/** Makes every route of the scope it is registered in an HTML page (or one of its assets). */
export const uiPages = fp(
  async (app: FastifyInstance) => {
    app.addHook('onRoute', (route: RouteOptions) => {
      route.config = { ...route.config, uiPage: true };
    });
  },
  { name: 'ui-pages' },
);
