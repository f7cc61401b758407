import { performance } from 'node:perf_hooks';
import type { WorkerMetrics } from '../../shared/metrics/index.js';
import type { InferenceBackend } from './inference-backend.js';

/**
 * A backend that measures each call to the one it wraps: duration, and batch size read from the
 * input tensor's first dimension. It sits right in front of the real backend, so when a dynamic
 * batcher comes between preprocessing and the backend, batch sizes are the ones the backend saw.
 */
export function instrumentBackend(
  backend: InferenceBackend,
  metrics: WorkerMetrics,
): InferenceBackend {
  return {
    kind: backend.kind,
    load: (models) => backend.load(models),
    close: () => backend.close(),
    async infer(request) {
      const started = performance.now();
      const response = await backend.infer(request);
      const seconds = (performance.now() - started) / 1000;
      metrics.observeInference(request.model.name, seconds, request.input.dims[0] ?? 1);
      return response;
    },
  };
}
