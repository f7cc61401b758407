import type { Send } from '../remote/remote-backend.js';
import { errorDetail } from '../remote/remote-errors.js';

/** TF Serving's `ModelVersionStatus.State`. */
export type VersionState = 'START' | 'LOADING' | 'AVAILABLE' | 'UNLOADING' | 'END' | 'UNKNOWN';

export interface VersionStatus {
  version: string;
  state: VersionState;
  error?: string;
}

/** One tensor of a signature: its dtype (`DT_FLOAT`, `DT_STRING`, ...) and shape (-1: any). */
export interface TensorInfo {
  dtype: string;
  /** Undefined when the rank is unknown. */
  shape: number[] | undefined;
}

export interface SignatureDef {
  inputs: Record<string, TensorInfo>;
  outputs: Record<string, TensorInfo>;
}

/** Which servable a call addresses: the latest, a version, or a version label. */
export interface Servable {
  name: string;
  version?: string;
  label?: string;
}

/**
 * A request TF Serving rejected (4xx), with its own words (`{"error": "..."}`): 404 for a servable
 * it does not have, 400 for an input that does not fit the signature.
 */
export class TfServingRequestError extends Error {
  override name = 'TfServingRequestError';

  constructor(
    readonly status: number,
    readonly detail: string,
  ) {
    super(`TF Serving answered ${status}: ${detail}`);
  }
}

/**
 * The TF Serving REST API (https://www.tensorflow.org/tfx/serving/api_rest) over a `send` that
 * reaches one server or a balanced pool of them. Transport faults and 5xx answers are the sender's
 * to report; 4xx answers throw {@link TfServingRequestError}.
 */
export class TfServingClient {
  constructor(private readonly send: Send) {}

  /** `GET /v1/models/{name}[/versions/{v}|/labels/{l}]`: the state of each version. */
  async modelStatus(servable: Servable): Promise<VersionStatus[]> {
    const body = await this.get(servablePath(servable));
    const list = (body as { model_version_status?: unknown }).model_version_status;
    if (!Array.isArray(list)) throw new TypeError('no model_version_status in the status answer');
    return list.map((entry: Record<string, unknown>) => {
      const status = entry.status as { error_code?: string; error_message?: string } | undefined;
      return {
        version: String(entry.version),
        state: String(entry.state) as VersionState,
        error: status?.error_message || undefined,
      };
    });
  }

  /** `GET .../metadata`: the named signature's inputs and outputs, or undefined when absent. */
  async signature(
    servable: Servable,
    signatureName: string,
  ): Promise<{ signature: SignatureDef | undefined; available: string[] }> {
    const body = (await this.get(`${servablePath(servable)}/metadata`)) as Record<string, unknown>;
    // TF Serving writes proto field names (signature_def); OpenVINO's compatible server camelCase.
    const metadata = body.metadata as Record<string, Record<string, unknown>> | undefined;
    const map = metadata?.signature_def;
    const defs = (map?.signature_def ?? map?.signatureDef ?? {}) as Record<string, RawSignature>;
    const raw = defs[signatureName];
    return {
      signature: raw ? { inputs: tensors(raw.inputs), outputs: tensors(raw.outputs) } : undefined,
      available: Object.keys(defs).filter((name) => !name.startsWith('__')),
    };
  }

  /**
   * `POST .../{name}[/versions/{v}|/labels/{l}]:predict` with a request body already written
   * (`instances` or `inputs`, see tf-serving.tensors.ts); the answer's text.
   */
  async predict(servable: Servable, body: string | Uint8Array): Promise<string> {
    const response = await this.send({
      method: 'POST',
      path: `${servablePath(servable)}:predict`,
      body,
    });
    if (response.status !== 200) {
      throw new TfServingRequestError(response.status, errorDetail(response.body));
    }
    return response.body;
  }

  private async get(path: string): Promise<unknown> {
    const response = await this.send({ method: 'GET', path });
    if (response.status !== 200) {
      throw new TfServingRequestError(response.status, errorDetail(response.body));
    }
    return JSON.parse(response.body) as unknown;
  }
}

export function servablePath({ name, version, label }: Servable): string {
  const base = `/v1/models/${encodeURIComponent(name)}`;
  if (version) return `${base}/versions/${encodeURIComponent(version)}`;
  if (label) return `${base}/labels/${encodeURIComponent(label)}`;
  return base;
}

interface RawTensor {
  dtype?: string;
  tensor_shape?: RawShape;
  tensorShape?: RawShape;
}
interface RawShape {
  dim?: { size?: string | number }[];
  unknown_rank?: boolean;
  unknownRank?: boolean;
}
interface RawSignature {
  inputs?: Record<string, RawTensor>;
  outputs?: Record<string, RawTensor>;
}

function tensors(raw: Record<string, RawTensor> | undefined): Record<string, TensorInfo> {
  return Object.fromEntries(
    Object.entries(raw ?? {}).map(([name, tensor]) => {
      const shape = tensor.tensor_shape ?? tensor.tensorShape;
      const unknownRank = shape?.unknown_rank ?? shape?.unknownRank ?? shape === undefined;
      return [
        name,
        {
          dtype: tensor.dtype ?? 'DT_INVALID',
          shape: unknownRank ? undefined : (shape?.dim ?? []).map((d) => Number(d.size ?? -1)),
        },
      ];
    }),
  );
}
