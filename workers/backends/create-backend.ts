import type { Config } from '../../shared/config/config.js';
import type { BackendKind } from '../../shared/models/model-spec.js';
import type { InferenceBackend } from './inference-backend.js';
import { OnnxRuntimeBackend } from './onnx-runtime.backend.js';

/** The backend implementation for a worker pool, as configured. */
export function createBackend(kind: BackendKind, config: Config): InferenceBackend {
  switch (kind) {
    case 'onnx':
      return new OnnxRuntimeBackend({
        repository: config.models.repository,
        intraOpThreads: config.backends.onnxIntraOpThreads,
      });
    case 'tensorflow':
      throw new Error('The TensorFlow Serving backend is not implemented yet');
  }
}
