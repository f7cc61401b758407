/**
 * The API as api/server.ts builds it, without listening on a port, so a test drives the real app
 * through `app.inject()` against real Redis, BullMQ and S3.
 */
import type { Tracer } from '@opentelemetry/api';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import {
  type ApiResources,
  type ApiResourcesOptions,
  createApiResources,
} from '../../api/api-resources.js';
import { buildApp } from '../../api/app.js';
import type { Config } from '../../shared/config/config.js';
import type { Logger } from '../../shared/logging/logger.js';
import type { ModelRegistry } from '../../shared/models/registry.js';

export interface TestApiOptions extends ApiResourcesOptions {
  registry: ModelRegistry;
  /** @defaultValue a silent logger */
  logger?: Logger;
  /** A tracer for server spans (tracing tests). */
  tracer?: Tracer;
  /** Whether shutdown has begun. @defaultValue true once `close()` is called */
  isClosing?: () => boolean;
}

export type TestApi = Omit<ApiResources, 'close' | 'deps'> & {
  app: FastifyInstance;
  /** Idempotent; releases everything the factory opened. */
  close(): Promise<void>;
};

export async function buildTestApi(config: Config, options: TestApiOptions): Promise<TestApi> {
  const logger = options.logger ?? pino({ level: 'silent' });
  const resources = await createApiResources(config, logger, {
    statusRefreshMs: 100,
    ...options,
  });
  let closing: Promise<void> | undefined;
  let app: FastifyInstance;
  try {
    app = await buildApp({
      ...resources.deps,
      ...(options.tracer ? { tracer: options.tracer } : {}),
      isClosing: options.isClosing ?? (() => closing !== undefined),
    });
    await app.ready();
  } catch (err) {
    await resources.close();
    throw err;
  }
  const { deps: _deps, close: _close, ...rest } = resources;
  return {
    ...rest,
    app,
    close() {
      // A dependency a test broke on purpose (Redis disconnected) fails its step; the rest still run.
      closing ??= app.close().then(
        () => resources.close(),
        () => resources.close(),
      );
      return closing;
    },
  };
}
