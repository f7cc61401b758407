import type { ModelStatus } from '../../shared/backends/backend-status.js';
import type { BackendKind, ModelDefinition } from '../../shared/models/model-spec.js';
import type { OutputTensor } from '../postprocess/output-tensor.js';

/** A batch of preprocessed inputs: dims[0] is the batch size. */
export interface InputTensor {
  data: Float32Array;
  dims: readonly number[];
}

export interface InferenceRequest {
  model: ModelDefinition;
  /** The requested version; absent: the newest the backend has. */
  version?: string;
  input: InputTensor;
}

export interface InferenceResponse {
  /** The version that answered. */
  version: string;
  output: OutputTensor;
}

/**
 * One way to run models (Triton's vocabulary: a backend). Implementations: ONNX Runtime in-process
 * today; TF Serving and remote Open Inference Protocol servers share this interface. A dynamic
 * batcher wraps a backend behind the same `infer`.
 *
 * `infer` throws job failures from the error catalogue (`jobFailure`): retryable ones for outages
 * and timeouts, unrecoverable ones for inputs that can never succeed.
 */
export interface InferenceBackend {
  readonly kind: BackendKind;
  /**
   * Prepares every model this backend serves. Never throws for one bad model: its status says
   * `unavailable` and why, so one broken file does not take the others down.
   */
  load(models: readonly ModelDefinition[]): Promise<Record<string, ModelStatus>>;
  infer(request: InferenceRequest): Promise<InferenceResponse>;
  close(): Promise<void>;
}
