import { jobFailure, withCause } from '../../../shared/errors/index.js';
import type { ModelDefinition, TensorflowBackendSpec } from '../../../shared/models/model-spec.js';
import type { InferenceRequest, InferenceResponse } from '../inference-backend.js';
import {
  type Inspection,
  type ModelOnReplica,
  RemoteBackend,
  type RemoteBackendOptions,
  type Send,
} from '../remote/remote-backend.js';
import { type Servable, TfServingClient, TfServingRequestError } from './tf-serving.client.js';
import { checkSignature, type TfSignature } from './tf-serving.signature.js';
import { predictBody, readPredictOutput } from './tf-serving.tensors.js';

/**
 * TensorFlow Serving over its REST API, balanced across the replicas of TENSORFLOW_SERVING_URL.
 * A model is ready when a replica reports a version AVAILABLE and the signature fits the registry.
 * TF Serving's errors become catalogue codes: a servable it does not have is MODEL_UNAVAILABLE (or
 * MODEL_VERSION_NOT_FOUND for a requested version), a rejected input INFERENCE_FAILED, an outage
 * BACKEND_UNAVAILABLE, a slow answer BACKEND_TIMEOUT.
 */
export class TfServingBackend extends RemoteBackend<TfSignature> {
  readonly kind = 'tensorflow' as const;
  private readonly client: TfServingClient;

  constructor(options: RemoteBackendOptions) {
    super('TF Serving', options);
    this.client = new TfServingClient((request) => this.pool.send(request));
  }

  takesEncodedImages(model: ModelDefinition): boolean {
    return model.backends.tensorflow?.encoding === 'b64';
  }

  async infer({ model, version, input }: InferenceRequest): Promise<InferenceResponse> {
    const spec = specOf(model);
    const signature = this.signature(model);
    const servable = servableOf(model, spec, version);
    const body = predictBody({
      signatureName: signature.signatureName,
      inputName: signature.inputName,
      format: spec.request_format,
      input,
    });
    let answer: string;
    try {
      answer = await this.client.predict(servable, body);
    } catch (err) {
      if (err instanceof TfServingRequestError) throw requestFailure(model, servable, err);
      throw err;
    }
    try {
      return {
        version: servable.version ?? this.newestVersion(model) ?? '',
        output: readPredictOutput(answer, signature.outputName),
      };
    } catch (err) {
      throw jobFailure('INFERENCE_FAILED', `TF Serving's answer: ${(err as Error).message}`);
    }
  }

  protected serves(model: ModelDefinition): boolean {
    return model.backends.tensorflow !== undefined;
  }

  protected async probeModel(send: Send, model: ModelDefinition): Promise<ModelOnReplica> {
    const spec = specOf(model);
    const servable = servableOf(model, spec, undefined);
    try {
      const versions = await new TfServingClient(send).modelStatus(servable);
      const available = versions.filter((v) => v.state === 'AVAILABLE').map((v) => v.version);
      if (available.length > 0) {
        return { state: 'ready', versions: available.sort((a, b) => Number(b) - Number(a)) };
      }
      // A version's error is TF Serving's own message, often with the model's path on its disk.
      const states = versions.map((v) => `${v.version} ${v.state}`);
      const errors = versions.filter((v) => v.error).map((v) => `${v.version}: ${v.error}`);
      return {
        state: 'unavailable',
        versions: [],
        reason: `TF Serving has no version of "${servable.name}" available (${states.join(', ') || 'none'})`,
        detail: errors.join('; ') || undefined,
      };
    } catch (err) {
      if (!(err instanceof TfServingRequestError)) throw err;
      return {
        state: 'unavailable',
        versions: [],
        reason: `TF Serving does not serve "${servable.name}" (HTTP ${err.status})`,
        detail: err.detail,
      };
    }
  }

  protected async inspect(
    send: Send,
    model: ModelDefinition,
    version: string | undefined,
  ): Promise<Inspection<TfSignature>> {
    const spec = specOf(model);
    const signatureName = spec.signature_name ?? 'serving_default';
    try {
      const found = await new TfServingClient(send).signature(
        { name: spec.name ?? model.name, version },
        signatureName,
      );
      return checkSignature(model, spec, found);
    } catch (err) {
      if (!(err instanceof TfServingRequestError)) throw err;
      return {
        ok: false,
        reason: `TF Serving has no metadata for it (HTTP ${err.status})`,
        detail: err.detail,
      };
    }
  }
}

function specOf(model: ModelDefinition): TensorflowBackendSpec {
  const spec = model.backends.tensorflow;
  if (!spec) throw jobFailure('MODEL_UNAVAILABLE', model.name, 'it is not a TF Serving model');
  return spec;
}

/** A requested version wins; then the registry's pinned version, then its label. */
function servableOf(
  model: ModelDefinition,
  spec: TensorflowBackendSpec,
  requested: string | undefined,
): Servable {
  const version = requested ?? spec.version;
  const name = spec.name ?? model.name;
  return version ? { name, version } : { name, label: spec.label };
}

/**
 * TF Serving rejected the request (4xx): none of these get better with a retry here. Its answer
 * (which may name its paths and internals) is the failure's cause, for the worker's log, not the
 * client's words.
 */
function requestFailure(
  model: ModelDefinition,
  servable: Servable,
  err: TfServingRequestError,
): Error {
  if (err.status === 404) {
    return withCause(
      servable.version
        ? jobFailure('MODEL_VERSION_NOT_FOUND', model.name, servable.version)
        : jobFailure('MODEL_UNAVAILABLE', model.name, 'TF Serving does not serve it (HTTP 404)'),
      err,
    );
  }
  return withCause(
    jobFailure('INFERENCE_FAILED', `TF Serving rejected the input (HTTP ${err.status})`),
    err,
  );
}
