import { rm } from 'node:fs/promises';
import { pino } from 'pino';
import type { Config } from '../../shared/config/config.js';
import type { Logger } from '../../shared/logging/logger.js';
import { ModelRegistry } from '../../shared/models/registry.js';
import { OnnxRuntimeBackend } from '../../workers/backends/onnx-runtime.backend.js';
import { InferenceWorker } from '../../workers/inference-worker.js';
import { createModelRepository, registryDocument, testConfig } from './inference-stack.js';
import { cleanRedisPrefix, type TestServices, uniquePrefix } from './services.js';
import { sharedServices } from './shared-services.js';

/**
 * What integration tests build APIs on: the run's Redis and S3, a generated model repository, a
 * config on a prefix and bucket of its own, and one ONNX worker in this process. APIs are the test's own
 * (`buildTestApi(stack.config, { registry: stack.registry })`); close them before `stop`.
 */
export interface InProcessWorker {
  services: TestServices;
  repository: string;
  registry: ModelRegistry;
  config: Config;
  worker: InferenceWorker;
  /** Closes the worker, removes its Redis keys and the repository. */
  stop(): Promise<void>;
}

export interface InProcessWorkerOptions {
  /** The registry over the generated repository; default: {@link registryDocument}'s models. */
  registry?: (repository: string) => ModelRegistry;
  /** Settings beside {@link testConfig}'s. */
  env?: Record<string, string>;
  /** The worker's logger; default: silent. */
  logger?: Logger;
}

export async function startInProcessWorker(
  options: InProcessWorkerOptions = {},
): Promise<InProcessWorker> {
  const services = sharedServices();
  const repository = await createModelRepository();
  const prefix = uniquePrefix();
  const remove = async () => {
    await cleanRedisPrefix(services.redisUrl, prefix);
    await rm(repository, { recursive: true, force: true });
  };
  try {
    const registry =
      options.registry?.(repository) ?? ModelRegistry.fromDocument(registryDocument());
    const config = testConfig(
      services,
      { prefix, bucket: uniquePrefix(), modelRepository: repository },
      options.env,
    );
    const worker = await InferenceWorker.start({
      config,
      registry,
      backend: new OnnxRuntimeBackend({ repository }),
      logger: options.logger ?? pino({ level: 'silent' }),
    });
    return {
      services,
      repository,
      registry,
      config,
      worker,
      async stop() {
        await worker.close();
        await remove();
      },
    };
  } catch (err) {
    await remove();
    throw err;
  }
}
