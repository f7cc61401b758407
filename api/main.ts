import { ConfigError, loadConfig } from '../shared/config/config.js';
import { bufferedStdout, createLogger } from '../shared/logging/logger.js';
import { RegistryError } from '../shared/models/registry.js';
import { startTracing } from '../shared/tracing/tracing.js';
import { ApiKeyConfigError } from './auth/api-key-ring.js';
import { ApiServer } from './server.js';

/** Exit code for a configuration error (sysexits EX_CONFIG): supervisors do not restart on it. */
const EXIT_CONFIG = 78;

async function main(): Promise<void> {
  let config: ReturnType<typeof loadConfig>;
  try {
    config = loadConfig(process.env, ['api']);
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(err.message);
      process.exit(EXIT_CONFIG);
    }
    throw err;
  }
  // The API writes a line per request (the access log): buffered, not one write each.
  const logger = createLogger('api', config.logLevel, bufferedStdout());
  const tracing = await startTracing(config.tracing.otlpEndpoint, 'ai-gateway-api');
  let server: ApiServer;
  try {
    server = await ApiServer.start(config, logger, tracing);
  } catch (err) {
    logger.fatal({ err: (err as Error).message }, 'API failed to start');
    const badConfig =
      err instanceof RegistryError ||
      err instanceof ApiKeyConfigError ||
      err instanceof ConfigError;
    process.exit(badConfig ? EXIT_CONFIG : 1);
  }

  const stop = (signal: string) => {
    logger.info({ signal }, 'shutting down');
    const force = setTimeout(() => {
      logger.error('shutdown timed out; exiting');
      process.exit(1);
    }, config.shutdownTimeoutMs);
    force.unref();
    // Spans of the last requests are flushed once they are done.
    server
      .close()
      .then(() => tracing?.shutdown())
      .then(
        () => process.exit(0),
        () => process.exit(1),
      );
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
}

void main();
