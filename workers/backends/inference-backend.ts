import type { ReplicaHealth } from '../../shared/backends/backend-health.js';
import type { ModelStatus } from '../../shared/backends/backend-status.js';
import type { BackendKind, ModelDefinition } from '../../shared/models/model-spec.js';
import type { OutputTensor } from '../postprocess/output-tensor.js';

/** A batch of preprocessed inputs: dims[0] is the batch size. */
export interface InputTensor {
  data: Float32Array;
  dims: readonly number[];
}

/**
 * Encoded images (JPEG, PNG, ...), one per batch item, for a model whose server decodes and resizes
 * them itself (a TF Serving signature that takes image bytes, sent as `{"b64": ...}`).
 */
export interface EncodedImages {
  encoded: readonly Buffer[];
}

export interface InferenceRequest {
  model: ModelDefinition;
  /** The requested version; absent: the newest the backend has. */
  version?: string;
  input: InputTensor | EncodedImages;
}

export interface InferenceResponse {
  /** The version that answered. */
  version: string;
  output: OutputTensor;
}

/** What a backend knows of its servers and models now. */
export interface BackendHealth {
  models: Record<string, ModelStatus>;
  /** Remote servers with their probe result and circuit state; empty for in-process backends. */
  replicas: ReplicaHealth[];
}

/**
 * One way to run models (Triton's vocabulary: a backend). Implementations: ONNX Runtime in-process,
 * TF Serving over REST, and remote Open Inference Protocol (v2) servers. A dynamic batcher wraps a
 * backend behind the same `infer`.
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
  /** The latest health picture. Absent: the statuses `load` returned hold for good. */
  health?(): BackendHealth;
  /** Checks every server and model now (bounded in time); `health()` reflects the result. */
  probe?(): Promise<void>;
  /** Calls `listener` when health changes between probes (a circuit opens or closes). */
  onHealthChange?(listener: () => void): void;
  /**
   * Whether any server can take a request now. False when every replica is down or its circuit is
   * open: retrying here is pointless, the job should move to another backend at once.
   */
  canServe?(): boolean;
  /**
   * The largest batch this backend takes for the model (a model exported with a fixed batch
   * dimension takes only that many inputs per call). Absent or undefined: any size.
   */
  maxBatchSize?(model: ModelDefinition): number | undefined;
  /**
   * How many calls for the model the backend runs at once (Triton's model instances): one for an
   * in-process session, every keep-alive connection of every replica for a server. A dynamic
   * batcher fills the next batch while they are all busy. Absent: no limit.
   */
  concurrentCalls?(model: ModelDefinition): number;
  /** Whether this model takes encoded image bytes rather than a preprocessed tensor. */
  takesEncodedImages?(model: ModelDefinition): boolean;
}

export function isEncoded(input: InferenceRequest['input']): input is EncodedImages {
  return 'encoded' in input;
}
