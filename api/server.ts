import type { FastifyInstance } from 'fastify';
import type { Config } from '../shared/config/config.js';
import type { Logger } from '../shared/logging/logger.js';
import type { Tracing } from '../shared/tracing/tracing.js';
import { type ApiResources, createApiResources } from './api-resources.js';
import { buildApp } from './app.js';

/** How long before the end of the grace period waiting requests are answered 202. */
const RELEASE_MARGIN_MS = 5_000;

/**
 * The API process: its resources, the HTTP app on top, and shutdown in order. `close()` stops
 * accepting, drains in-flight requests, then releases listeners and connections; it is idempotent
 * and runs every step even when one fails.
 */
export class ApiServer {
  private closing: Promise<void> | undefined;

  readonly app: FastifyInstance;
  private readonly resources: ApiResources;
  private readonly logger: Logger;
  private readonly shutdownTimeoutMs: number;

  private constructor(parts: {
    app: FastifyInstance;
    resources: ApiResources;
    logger: Logger;
    shutdownTimeoutMs: number;
  }) {
    this.app = parts.app;
    this.resources = parts.resources;
    this.logger = parts.logger;
    this.shutdownTimeoutMs = parts.shutdownTimeoutMs;
  }

  static async start(config: Config, logger: Logger, tracing?: Tracing): Promise<ApiServer> {
    const resources = await createApiResources(
      config,
      logger,
      tracing ? { telemetry: tracing.telemetry } : {},
    );
    let server: ApiServer | undefined;
    try {
      const app = await buildApp({
        ...resources.deps,
        tracer: tracing?.tracer,
        isClosing: () => server?.closing !== undefined,
      });
      server = new ApiServer({
        app,
        resources,
        logger,
        shutdownTimeoutMs: config.shutdownTimeoutMs,
      });
      await app.listen({ host: config.http.host, port: config.http.port });
      return server;
    } catch (err) {
      await (server ? server.close() : resources.close());
      throw err;
    }
  }

  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    const onStepError = (step: string, err: unknown) =>
      this.logger.warn({ step, err: String(err) }, 'shutdown step failed');
    // Sync requests may wait longer for their jobs than the grace period lasts: before it runs out
    // their waits end, and they are answered 202 with Location (the jobs carry on) instead of being
    // cut off with the process.
    const release = setTimeout(
      () => this.resources.waiter.close(),
      Math.max(0, this.shutdownTimeoutMs - Math.min(RELEASE_MARGIN_MS, this.shutdownTimeoutMs / 2)),
    );
    // Requests in flight finish first; what they use is released after.
    try {
      await this.app.close();
    } catch (err) {
      onStepError('http', err);
    } finally {
      clearTimeout(release);
    }
    await this.resources.close(onStepError);
  }
}
