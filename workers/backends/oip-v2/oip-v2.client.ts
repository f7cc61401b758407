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
  /**
   * Row-major values: JSON lists (nested lists are flattened by the reader), or the raw bytes of an
   * output sent as binary tensor data.
   */
  data: unknown;
}

/** The binary tensor data extension's header: the JSON part's length, binary tensors after it. */
const HEADER_LENGTH = 'inference-header-content-length';
/** What `GET /v2` lists when a server takes and sends tensors as raw bytes (Triton does). */
export const BINARY_TENSOR_DATA = 'binary_tensor_data';

/** The request of an `infer` call: its JSON part and, for binary inputs, their bytes in order. */
export interface InferRequest {
  /** `{"inputs": [...], "outputs": [...]}`, already serialized. */
  json: string | Uint8Array;
  /** Bytes of the inputs whose `parameters.binary_data_size` says so, in input order. */
  binary?: readonly Uint8Array[];
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

  /** `GET /v2`: the server's protocol extensions; none when it does not say. */
  async extensions(): Promise<string[]> {
    const response = await this.send({ method: 'GET', path: '/v2' });
    if (response.status !== 200) return [];
    try {
      const { extensions } = JSON.parse(response.body) as { extensions?: unknown };
      return Array.isArray(extensions) ? extensions.map(String) : [];
    } catch {
      return [];
    }
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
      platform: body.platform,
      inputs: body.inputs ?? [],
      outputs: body.outputs ?? [],
    };
  }

  /**
   * `POST /v2/models/{m}[/versions/{v}]/infer`. With binary inputs the body is the JSON part and
   * then their bytes, its length in `Inference-Header-Content-Length` (the binary tensor data
   * extension); an answer in that form has each binary output's bytes as its `data`.
   */
  async infer(
    name: string,
    version: string | undefined,
    request: InferRequest,
  ): Promise<InferAnswer> {
    const json = typeof request.json === 'string' ? Buffer.from(request.json) : request.json;
    const binary = request.binary ?? [];
    const response = await this.send({
      method: 'POST',
      path: `${modelPath(name, version)}/infer`,
      ...(binary.length === 0
        ? { body: json }
        : {
            body: Buffer.concat([json, ...binary]),
            headers: {
              'content-type': 'application/octet-stream',
              [HEADER_LENGTH]: String(json.byteLength),
            },
          }),
    });
    if (response.status !== 200) {
      throw new OipRequestError(response.status, errorDetail(response.body));
    }
    return readAnswer(name, response.bytes, response.headers[HEADER_LENGTH]);
  }
}

/** An infer answer: JSON, or a JSON part of the header's length followed by binary outputs. */
function readAnswer(name: string, bytes: Buffer, headerLength: unknown): InferAnswer {
  const jsonLength = typeof headerLength === 'string' ? Number(headerLength) : bytes.length;
  if (!Number.isInteger(jsonLength) || jsonLength < 0 || jsonLength > bytes.length) {
    throw new Error(`the server's answer has a bad ${HEADER_LENGTH}: ${String(headerLength)}`);
  }
  const answer = JSON.parse(bytes.toString('utf8', 0, jsonLength)) as {
    model_name?: string;
    model_version?: string;
    outputs?: (InferOutput & { parameters?: { binary_data_size?: number } })[];
  };
  let offset = jsonLength;
  const outputs = (answer.outputs ?? []).map(({ parameters, ...output }) => {
    const size = parameters?.binary_data_size;
    if (size === undefined) return output;
    if (!Number.isInteger(size) || size < 0 || offset + size > bytes.length) {
      throw new Error(`the server's output "${output.name}" overruns its answer`);
    }
    const data = bytes.subarray(offset, offset + size);
    offset += size;
    return { ...output, data };
  });
  return {
    modelName: answer.model_name ?? name,
    modelVersion: answer.model_version ? String(answer.model_version) : undefined,
    outputs,
  };
}

export function modelPath(name: string, version?: string): string {
  const base = `/v2/models/${encodeURIComponent(name)}`;
  return version ? `${base}/versions/${encodeURIComponent(version)}` : base;
}
