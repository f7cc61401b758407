import { parseArgs } from 'node:util';
import { configuredTenantIds } from '../shared/auth/configured-tenants.js';
import { ApiKeyConfigError } from '../shared/auth/keys-file.js';
import { ConfigError, loadConfig } from '../shared/config/config.js';
import { createLogger } from '../shared/logging/logger.js';
import {
  createMetricsRegistry,
  createUsageMetrics,
  createWebhookMetrics,
  createWorkerMetrics,
} from '../shared/metrics/index.js';
import { BACKEND_KINDS, type BackendKind } from '../shared/models/model-spec.js';
import { ModelRegistry, RegistryError } from '../shared/models/registry.js';
import { startTracing } from '../shared/tracing/tracing.js';
import { createBackend } from './backends/create-backend.js';
import { InferenceWorker } from './inference-worker.js';
import { MetricsServer } from './metrics-server.js';
import { WebhookWorker } from './webhooks/webhook-worker.js';

/** Exit code for a configuration error (sysexits EX_CONFIG): supervisors do not restart on it. */
const EXIT_CONFIG = 78;

const USAGE = `usage: workers/main.ts --backend <${BACKEND_KINDS.join('|')}> | --webhooks`;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { backend: { type: 'string' }, webhooks: { type: 'boolean' } },
  });
  const kind = values.backend as BackendKind | undefined;
  const webhooks = values.webhooks === true;
  if (webhooks === (kind !== undefined) || (kind && !BACKEND_KINDS.includes(kind))) {
    console.error(USAGE);
    process.exit(EXIT_CONFIG);
  }

  let config: ReturnType<typeof loadConfig>;
  let registry: ModelRegistry;
  try {
    config = loadConfig(process.env, [kind ? 'inference-worker' : 'webhooks-worker']);
    registry = ModelRegistry.load(config.models.configPath);
  } catch (err) {
    if (err instanceof ConfigError || err instanceof RegistryError) {
      console.error(err.message);
      process.exit(EXIT_CONFIG);
    }
    throw err;
  }

  const logger = createLogger('worker', config.logLevel);
  // This process's metrics, on a registry of its own, served on WORKER_METRICS_PORT.
  const register = createMetricsRegistry();
  let metricsServer: MetricsServer;
  try {
    metricsServer = await MetricsServer.start(
      register,
      config.http.host,
      config.metrics.workerPort,
    );
  } catch (err) {
    logger.fatal(
      { err: (err as Error).message, port: config.metrics.workerPort },
      'worker metrics server failed to start: set WORKER_METRICS_PORT to a free port (0: any), one per worker process on a host',
    );
    process.exit(1);
  }
  logger.info(
    { url: `http://${config.http.host}:${metricsServer.port}/metrics` },
    'worker metrics listening',
  );

  const tracing = kind
    ? await startTracing(config.tracing.otlpEndpoint, 'ai-gateway-worker')
    : undefined;
  const worker = kind
    ? await startInferenceWorker(kind)
    : await WebhookWorker.start({ config, logger, metrics: createWebhookMetrics(register) }).catch(
        (err: Error) => {
          // A bad webhook secret in the keys file: its message names the entry, never the secret.
          if (!(err instanceof ApiKeyConfigError)) throw err;
          logger.fatal({ err: err.message }, 'webhooks worker failed to start');
          process.exit(EXIT_CONFIG);
        },
      );

  function startInferenceWorker(backend: BackendKind) {
    const models = registry.list().map((m) => m.name);
    const metrics = createWorkerMetrics(register, { backend, models });
    let tenants: string[];
    try {
      // The usage counters' tenant label: the configured key ids.
      tenants = configuredTenantIds(config.auth);
    } catch (err) {
      if (!(err instanceof ApiKeyConfigError)) throw err;
      logger.fatal({ err: err.message }, 'worker failed to start');
      process.exit(EXIT_CONFIG);
    }
    return InferenceWorker.start({
      config,
      registry,
      backend: createBackend(backend, config),
      logger,
      metrics,
      usageMetrics: createUsageMetrics(register, { models, tenants }),
      telemetry: tracing?.telemetry,
    });
  }

  const stop = (signal: string) => {
    logger.info({ signal }, 'shutting down');
    // The drain is bounded by SHUTDOWN_TIMEOUT_MS; this bounds what comes after it (closing
    // connections to a Redis that may be gone).
    setTimeout(() => {
      logger.error('shutdown timed out; exiting');
      process.exit(1);
    }, config.shutdownTimeoutMs + 10_000).unref();
    // Metrics stay up while the worker drains, so the last scrape sees how it ended.
    worker
      .close()
      .then(() => Promise.all([metricsServer.close(), tracing?.shutdown()]))
      .then(
        () => process.exit(0),
        (err: Error) => {
          logger.error({ err: err.message }, 'shutdown failed');
          process.exit(1);
        },
      );
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
}

main().catch((err: Error) => {
  console.error(`worker failed to start: ${err.stack ?? err.message}`);
  process.exit(1);
});
