/**
 * The pieces the observability tests share: the test registry plus a model whose every job fails
 * (its labels do not fit its output, so postprocessing fails: INFERENCE_FAILED, not retried), and
 * a sync predict over `app.inject()` that reports how long it took.
 */
import { performance } from 'node:perf_hooks';
import type { LightMyRequestResponse } from 'fastify';
import { ModelRegistry } from '../../shared/models/registry.js';
import type { TestApi } from './api-harness.js';
import { registryDocument } from './inference-stack.js';

export const FAILING_MODEL = 'mislabelled';

export function observabilityRegistry(repository: string): ModelRegistry {
  const document = registryDocument() as { models: Record<string, unknown> };
  document.models[FAILING_MODEL] = {
    task: 'classification',
    backends: { onnx: { source: `${repository}/colour/1/model.onnx` } },
    input: { width: 8, height: 8 },
    // The colour classifier has three classes.
    labels: ['only', 'two'],
    postprocess: { activation: 'none' },
  };
  return ModelRegistry.fromDocument(document);
}

export async function injectPredict(
  api: TestApi,
  model: string,
  image: Buffer,
  headers: Record<string, string> = {},
): Promise<{ res: LightMyRequestResponse; ms: number }> {
  const started = performance.now();
  const res = await api.app.inject({
    method: 'POST',
    url: `/predict/${model}`,
    payload: image,
    headers: { 'content-type': 'image/png', ...headers },
  });
  return { res, ms: performance.now() - started };
}
