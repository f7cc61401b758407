import type { Send } from '../remote/remote-backend.js';
import { errorDetail } from '../remote/remote-errors.js';

/** A tensor as model metadata describes it (`shape` -1: any size). */
export interface TensorMetadata {
  name: string;
  datatype: string;
  shape: number[];
}

export interface ModelMetadata {
  name: string;
  versions: string[];
  platform?: string;
  inputs: TensorMetadata[];
  outputs: TensorMetadata[];
}

export interface InferOutput {
  name: string;
  datatype: string;
  shape: number[];
  /** Row-major values, flat (nested lists are flattened by the reader). */
  data: unknown;
}

export interface InferAnswer {
  modelName: string;
  modelVersion?: string;
  outputs: InferOutput[];
}

/** A request the server rejected (4xx), with its own words (`{"error": "..."}`). */
export class OipRequestError extends Error {
  override name = 'OipRequestError';

  constructor(
    readonly status: number,
    readonly detail: string,
  ) {
    super(`the inference server answered ${status}: ${detail}`);
  }
}

/**
 * The Open Inference Protocol (KServe v2, as Triton and KServe's runtimes speak it) over HTTP/REST:
 * health, model readiness and metadata, and `infer` with JSON tensors. Transport faults and 5xx
 * answers are the sender's to report; 4xx answers throw {@link OipRequestError}.
 */
export class OipV2Client {
  constructor(private readonly send: Send) {}

  /** `GET /v2/health/ready`: the server can take inference requests. */
  async serverReady(): Promise<boolean> {
    const response = await this.send({ method: 'GET', path: '/v2/health/ready' });
    return response.status === 200;
  }

  /** `GET /v2/models/{m}[/versions/{v}]/ready`; any answer but 200 means not ready. */
  async modelReady(name: string, version?: string): Promise<boolean> {
    const response = await this.send({ method: 'GET', path: `${modelPath(name, version)}/ready` });
    return response.status === 200;
  }

  /** `GET /v2/models/{m}[/versions/{v}]`. */
  async metadata(name: string, version?: string): Promise<ModelMetadata> {
    const response = await this.send({ method: 'GET', path: modelPath(name, version) });
    if (response.status !== 200) {
      throw new OipRequestError(response.status, errorDetail(response.body));
    }
    const body = JSON.parse(response.body) as Partial<ModelMetadata>;
    return {
      name: String(body.name ?? name),
      versions: (body.versions ?? []).map(String),
      ...(body.platform ? { platform: body.platform } : {}),
      inputs: body.inputs ?? [],
      outputs: body.outputs ?? [],
    };
  }

  /** `POST /v2/models/{m}[/versions/{v}]/infer` with a body already written. */
  async infer(
    name: string,
    version: string | undefined,
    body: string | Uint8Array,
  ): Promise<InferAnswer> {
    const response = await this.send({
      method: 'POST',
      path: `${modelPath(name, version)}/infer`,
      body,
    });
    if (response.status !== 200) {
      throw new OipRequestError(response.status, errorDetail(response.body));
    }
    const answer = JSON.parse(response.body) as {
      model_name?: string;
      model_version?: string;
      outputs?: InferOutput[];
    };
    return {
      modelName: answer.model_name ?? name,
      ...(answer.model_version ? { modelVersion: String(answer.model_version) } : {}),
      outputs: answer.outputs ?? [],
    };
  }
}

export function modelPath(name: string, version?: string): string {
  const base = `/v2/models/${encodeURIComponent(name)}`;
  return version ? `${base}/versions/${encodeURIComponent(version)}` : base;
}
