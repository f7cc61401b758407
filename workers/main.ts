import { parseArgs } from 'node:util';
import { ConfigError, loadConfig } from '../shared/config/config.js';
import { createLogger } from '../shared/logging/logger.js';
import { BACKEND_KINDS, type BackendKind } from '../shared/models/model-spec.js';
import { ModelRegistry, RegistryError } from '../shared/models/registry.js';
import { createBackend } from './backends/create-backend.js';
import { InferenceWorker } from './inference-worker.js';
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
    config = loadConfig();
    registry = ModelRegistry.load(config.models.configPath);
  } catch (err) {
    if (err instanceof ConfigError || err instanceof RegistryError) {
      console.error(err.message);
      process.exit(EXIT_CONFIG);
    }
    throw err;
  }

  const logger = createLogger('worker', config.logLevel);
  const worker = kind
    ? await InferenceWorker.start({
        config,
        registry,
        backend: createBackend(kind, config),
        logger,
      })
    : await WebhookWorker.start({ config, logger });

  const stop = (signal: string) => {
    logger.info({ signal }, 'shutting down');
    worker.close().then(
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
