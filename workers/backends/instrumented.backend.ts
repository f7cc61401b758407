import { performance } from 'node:perf_hooks';
import type { WorkerMetrics } from '../../shared/metrics/index.js';
import { type InferenceBackend, isEncoded } from './inference-backend.js';

/**
 * A backend that measures each call to the one it wraps: duration, and batch size (the input
 * tensor's first dimension, or the number of encoded images). It sits right in front of the real
 * backend, so when a dynamic batcher comes between preprocessing and the backend, batch sizes are
 * the ones the backend saw.
 *
 * Only `infer` is intercepted: every other member, including the optional health and encoding
 * capabilities a backend may have, is the wrapped backend's own, so wrapping never hides one.
 */
export function instrumentBackend(
  backend: InferenceBackend,
  metrics: WorkerMetrics,
): InferenceBackend {
  const infer: InferenceBackend['infer'] = async (request) => {
    const started = performance.now();
    const response = await backend.infer(request);
    const seconds = (performance.now() - started) / 1000;
    const { input } = request;
    const batch = isEncoded(input) ? input.encoded.length : (input.dims[0] ?? 1);
    metrics.observeInference(request.model.name, seconds, batch);
    return response;
  };
  return new Proxy(backend, {
    get(target, property) {
      if (property === 'infer') return infer;
      const value = Reflect.get(target, property, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}
