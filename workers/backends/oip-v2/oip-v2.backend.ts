import { byVersionDesc } from '../../../shared/backends/backend-status.js';
import { jobFailure, withCause } from '../../../shared/errors/index.js';
import type { ModelDefinition, OnnxBackendSpec } from '../../../shared/models/model-spec.js';
import type { OutputTensor } from '../../postprocess/output-tensor.js';
import {
  type InferenceRequest,
  type InferenceResponse,
  type InputTensor,
  isEncoded,
} from '../inference-backend.js';
import { pickName, shapeMismatch } from '../remote/input-shape.js';
import { flatJson, flattenNested } from '../remote/json-tensors.js';
import {
  type Inspection,
  type ModelOnReplica,
  RemoteBackend,
  type RemoteBackendOptions,
  type Send,
} from '../remote/remote-backend.js';
import {
  BINARY_TENSOR_DATA,
  type InferAnswer,
  type InferRequest,
  OipRequestError,
  OipV2Client,
} from './oip-v2.client.js';

interface OipSignature {
  inputName: string;
  outputName: string;
}

/**
 * ONNX models on remote servers that speak the Open Inference Protocol v2 (Triton with its ONNX
 * Runtime backend, KServe), balanced across the replicas of ONNX_RUNTIME_URL: the `onnx` worker
 * pool uses it instead of in-process ONNX Runtime when that variable is set. A server is up when
 * `/v2/health/ready` says so; a model is ready when `/v2/models/{m}/ready` does and its metadata
 * (FP32 input of the registry's shape) fits.
 */
export class OipV2Backend extends RemoteBackend<OipSignature> {
  readonly kind = 'onnx' as const;
  private readonly client: OipV2Client;
  /** Per server, whether its last probe found the binary tensor data extension (`GET /v2`). */
  private readonly binaryTensors = new Map<string, boolean>();

  constructor(options: RemoteBackendOptions) {
    super('ONNX Runtime server', options);
    this.client = new OipV2Client((request) => this.pool.send(request));
  }

  async infer({ model, version, input }: InferenceRequest): Promise<InferenceResponse> {
    if (isEncoded(input)) {
      throw jobFailure('INFERENCE_FAILED', 'the ONNX Runtime server takes a tensor, not images');
    }
    const spec = specOf(model);
    const signature = this.signature(model);
    const requested = version ?? spec.version;
    let answer: InferAnswer;
    try {
      answer = await this.client.infer(
        spec.name ?? model.name,
        requested,
        this.binary() ? binaryRequest(signature, input) : jsonRequest(signature, input),
      );
    } catch (err) {
      if (!(err instanceof OipRequestError)) throw err;
      // The server's answer is the cause, for the worker's log; the client gets its status.
      if (err.status === 404) {
        throw withCause(
          requested
            ? jobFailure('MODEL_VERSION_NOT_FOUND', model.name, requested)
            : jobFailure(
                'MODEL_UNAVAILABLE',
                model.name,
                'the server does not serve it (HTTP 404)',
              ),
          err,
        );
      }
      throw withCause(
        jobFailure('INFERENCE_FAILED', `the ONNX Runtime server rejected it (HTTP ${err.status})`),
        err,
      );
    }
    return {
      version: answer.modelVersion ?? requested ?? this.newestVersion(model) ?? '',
      output: readOutput(answer, signature.outputName),
    };
  }

  protected serves(model: ModelDefinition): boolean {
    return model.backends.onnx !== undefined;
  }

  /**
   * A server that is not ready counts as down: thrown, so the pool marks it. A ready one says
   * whether it takes tensors as raw bytes.
   */
  protected override async probeServer(send: Send, url: string): Promise<void> {
    const client = new OipV2Client(send);
    if (!(await client.serverReady())) {
      throw new Error('the server is not ready (/v2/health/ready)');
    }
    this.binaryTensors.set(url, (await client.extensions()).includes(BINARY_TENSOR_DATA));
  }

  /**
   * Whether requests carry their tensors as raw bytes: when every server probed so far takes them
   * (a request is written before the pool picks its server). Raw float32 costs neither side any
   * parsing, where JSON text is about 11 bytes a value to write and to read.
   */
  private binary(): boolean {
    if (this.binaryTensors.size === 0) return false;
    for (const takes of this.binaryTensors.values()) if (!takes) return false;
    return true;
  }

  protected async probeModel(send: Send, model: ModelDefinition): Promise<ModelOnReplica> {
    const client = new OipV2Client(send);
    const spec = specOf(model);
    const name = spec.name ?? model.name;
    if (!(await client.modelReady(name, spec.version))) {
      return {
        state: 'unavailable',
        versions: [],
        reason: `the server has no ready model "${name}"${spec.version ? ` version ${spec.version}` : ''}`,
      };
    }
    try {
      const metadata = await client.metadata(name, spec.version);
      const versions = spec.version ? [spec.version] : [...metadata.versions].sort(byVersionDesc);
      return { state: 'ready', versions };
    } catch (err) {
      if (!(err instanceof OipRequestError)) throw err;
      return {
        state: 'unavailable',
        versions: [],
        reason: `no metadata (HTTP ${err.status})`,
        detail: err.detail,
      };
    }
  }

  protected async inspect(
    send: Send,
    model: ModelDefinition,
    version: string | undefined,
  ): Promise<Inspection<OipSignature>> {
    const spec = specOf(model);
    let metadata: Awaited<ReturnType<OipV2Client['metadata']>>;
    try {
      metadata = await new OipV2Client(send).metadata(spec.name ?? model.name, version);
    } catch (err) {
      if (!(err instanceof OipRequestError)) throw err;
      return {
        ok: false,
        reason: `the server has no metadata for it (HTTP ${err.status})`,
        detail: err.detail,
      };
    }
    const input = pickName(
      'input',
      metadata.inputs.map((t) => t.name),
      spec.input_name,
    );
    if (!input.ok) return { ok: false, reason: input.reason };
    const output = pickName(
      'output',
      metadata.outputs.map((t) => t.name),
      spec.output_name,
    );
    if (!output.ok) return { ok: false, reason: output.reason };
    const tensor = metadata.inputs.find((t) => t.name === input.name)!;
    if (tensor.datatype !== 'FP32') {
      return {
        ok: false,
        reason: `input "${input.name}" is ${tensor.datatype}; the worker sends FP32`,
      };
    }
    const mismatch = shapeMismatch(tensor.shape, model.input);
    if (mismatch) return { ok: false, reason: `input "${input.name}" has ${mismatch}` };
    return { ok: true, signature: { inputName: input.name, outputName: output.name } };
  }
}

function specOf(model: ModelDefinition): OnnxBackendSpec {
  const spec = model.backends.onnx;
  if (!spec) throw jobFailure('MODEL_UNAVAILABLE', model.name, 'it is not an ONNX model');
  return spec;
}

/** The input as JSON values (`data`), the output asked for as JSON. */
function jsonRequest(signature: OipSignature, input: InputTensor): InferRequest {
  return {
    json: Buffer.concat([
      Buffer.from(
        `{"inputs":[{"name":${JSON.stringify(signature.inputName)},` +
          `"shape":${JSON.stringify(input.dims)},"datatype":"FP32","data":`,
      ),
      flatJson(input.data),
      Buffer.from(`}],"outputs":[{"name":${JSON.stringify(signature.outputName)}}]}`),
    ]),
  };
}

/** The input as raw little-endian float32 after the JSON part, the output asked for the same way. */
function binaryRequest(signature: OipSignature, input: InputTensor): InferRequest {
  const bytes = new Uint8Array(input.data.buffer, input.data.byteOffset, input.data.byteLength);
  return {
    json: JSON.stringify({
      inputs: [
        {
          name: signature.inputName,
          shape: input.dims,
          datatype: 'FP32',
          parameters: { binary_data_size: bytes.byteLength },
        },
      ],
      outputs: [{ name: signature.outputName, parameters: { binary_data: true } }],
    }),
    binary: [littleEndian(bytes)],
  };
}

function readOutput(answer: InferAnswer, name: string): OutputTensor {
  const output = answer.outputs.find((o) => o.name === name);
  if (!output) {
    const names = answer.outputs.map((o) => o.name).join(', ') || 'none';
    throw jobFailure('INFERENCE_FAILED', `the server's answer has no output "${name}" (${names})`);
  }
  try {
    const { data } =
      output.data instanceof Uint8Array
        ? { data: float32Of(output.data, output.datatype) }
        : flattenNested(output.data);
    const size = output.shape.reduce((a, b) => a * b, 1);
    if (data.length !== size) {
      throw new TypeError(`${data.length} values for shape [${output.shape.join(', ')}]`);
    }
    return { data, dims: output.shape };
  } catch (err) {
    throw jobFailure(
      'INFERENCE_FAILED',
      `the server's output "${name}": ${(err as Error).message}`,
    );
  }
}

const HOST_IS_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** The binary tensor data extension's byte order is little-endian; x86 and ARM hosts are too. */
function littleEndian(bytes: Uint8Array): Uint8Array {
  if (HOST_IS_LITTLE_ENDIAN) return bytes;
  return Buffer.from(bytes).swap32();
}

/** An FP32 output's raw bytes as values (copied: the answer's bytes need not be aligned). */
function float32Of(bytes: Uint8Array, datatype: string): Float32Array {
  if (datatype !== 'FP32') throw new TypeError(`${datatype} values; the worker reads FP32`);
  if (bytes.byteLength % 4 !== 0) throw new TypeError(`${bytes.byteLength} bytes of FP32 values`);
  const copy = new Uint8Array(bytes);
  if (!HOST_IS_LITTLE_ENDIAN) Buffer.from(copy.buffer).swap32();
  return new Float32Array(copy.buffer);
}
