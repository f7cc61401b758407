import type { Config } from '../../shared/config/config.js';
import type { BackendKind } from '../../shared/models/model-spec.js';
import type { InferenceBackend } from './inference-backend.js';
import { OipV2Backend } from './oip-v2/oip-v2.backend.js';
import { OnnxRuntimeBackend } from './onnx-runtime.backend.js';
import { OnnxRuntimeThreadBackend } from './onnx-runtime-thread.js';
import type { RemoteBackendOptions } from './remote/remote-backend.js';
import { TfServingBackend } from './tf-serving/tf-serving.backend.js';

/**
 * The backend implementation for a worker pool, as configured: `tensorflow` calls TF Serving;
 * `onnx` runs ONNX Runtime in-process (on the event loop, or in a thread of its own with
 * ONNX_INFERENCE_THREAD), or calls Open Inference Protocol servers when
 * ONNX_RUNTIME_URL is set.
 */
export function createBackend(kind: BackendKind, config: Config): InferenceBackend {
  const { backends } = config;
  const remote = (urls: string[]): RemoteBackendOptions => ({
    urls,
    timeoutMs: backends.timeoutMs,
    connections: backends.connectionsPerReplica,
    batchCalls: backends.batchCallsPerReplica,
    breaker: backends.breaker,
    probeTimeoutMs: backends.healthCheck.timeoutMs,
  });
  switch (kind) {
    case 'onnx': {
      if (backends.onnxRuntimeUrls.length > 0) {
        return new OipV2Backend(remote(backends.onnxRuntimeUrls));
      }
      const options = {
        repository: config.models.repository,
        intraOpThreads: backends.onnxIntraOpThreads,
      };
      return backends.onnxInferenceThread
        ? new OnnxRuntimeThreadBackend(options)
        : new OnnxRuntimeBackend(options);
    }
    case 'tensorflow':
      return new TfServingBackend(remote(backends.tensorflowServingUrls));
  }
}
