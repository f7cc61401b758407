import ort from 'onnxruntime-node';
import type { ModelStatus } from '../../shared/backends/backend-status.js';
import { jobFailure } from '../../shared/errors/index.js';
import type { InputSpec, ModelDefinition } from '../../shared/models/model-spec.js';
import {
  type BackendHealth,
  type InferenceBackend,
  type InferenceRequest,
  type InferenceResponse,
  isEncoded,
} from './inference-backend.js';
import { findModelFiles } from './model-files.js';

export interface OnnxRuntimeBackendOptions {
  /** Triton-style model repository: `<repository>/<model>/<version>/model.onnx`. */
  repository: string;
  /**
   * Threads per session for one operator. 1 is fastest for batch 1 on small models; more pays off
   * for large batches. 0 lets ONNX Runtime choose.
   * @defaultValue 1
   */
  intraOpThreads?: number;
}

interface LoadedVersion {
  session: ort.InferenceSession;
  inputName: string;
  outputName: string;
  /** The input's batch dimension when the model fixes it; undefined: dynamic. */
  fixedBatch: number | undefined;
}

/** ONNX Runtime in this process: one session per model version, loaded once and reused. */
export class OnnxRuntimeBackend implements InferenceBackend {
  readonly kind = 'onnx' as const;
  /** model name -> version -> session, newest version first. */
  private readonly models = new Map<string, Map<string, LoadedVersion>>();
  private statuses: Record<string, ModelStatus> = {};
  private readonly intraOpThreads: number;

  constructor(private readonly options: OnnxRuntimeBackendOptions) {
    this.intraOpThreads = options.intraOpThreads ?? 1;
    if (this.intraOpThreads < 0) throw new RangeError('intraOpThreads must be >= 0');
  }

  async load(models: readonly ModelDefinition[]): Promise<Record<string, ModelStatus>> {
    const statuses: Record<string, ModelStatus> = {};
    for (const model of models) {
      const spec = model.backends.onnx;
      if (!spec) continue;
      const found = findModelFiles(model.name, spec, this.options.repository);
      if (!found.ok) {
        statuses[model.name] = {
          state: 'unavailable',
          versions: [],
          reason: found.reason,
          detail: found.detail,
        };
        continue;
      }
      const versions = new Map<string, LoadedVersion>();
      // Each problem in a client's words and in the operator's (with the file's path).
      const problems: { reason: string; detail: string }[] = [];
      for (const { version, path } of found.files) {
        try {
          const session = await ort.InferenceSession.create(path, {
            intraOpNumThreads: this.intraOpThreads,
            interOpNumThreads: 1,
            graphOptimizationLevel: 'all',
          });
          const inputName = spec.input_name ?? session.inputNames[0]!;
          const loaded = {
            session,
            inputName,
            outputName: spec.output_name ?? session.outputNames[0]!,
            fixedBatch: fixedBatchOf(session, inputName),
          };
          const mismatch = describeMismatch(loaded, session, model.input);
          if (mismatch) {
            await session.release();
            const problem = `version ${version}: ${mismatch}`;
            problems.push({ reason: problem, detail: problem });
          } else {
            versions.set(version, loaded);
          }
        } catch (err) {
          problems.push({
            reason: `version ${version}: ONNX Runtime cannot load its file`,
            detail: `ONNX Runtime cannot load ${path}: ${(err as Error).message}`,
          });
        }
      }
      if (versions.size > 0) this.models.set(model.name, versions);
      statuses[model.name] =
        versions.size > 0
          ? { state: 'ready', versions: [...versions.keys()] }
          : {
              state: 'unavailable',
              versions: [],
              reason: problems.map((p) => p.reason).join('; '),
              detail: problems.map((p) => p.detail).join('; '),
            };
    }
    this.statuses = { ...this.statuses, ...statuses };
    return statuses;
  }

  /** One session per version, whose runs take turns on the event loop. */
  concurrentCalls(): number {
    return 1;
  }

  /** The smallest fixed batch dimension among the model's versions; undefined: all dynamic. */
  maxBatchSize(model: ModelDefinition): number | undefined {
    const fixed = [...(this.models.get(model.name)?.values() ?? [])].flatMap((v) =>
      v.fixedBatch === undefined ? [] : [v.fixedBatch],
    );
    return fixed.length > 0 ? Math.min(...fixed) : undefined;
  }

  /** In-process sessions: a model is ready once its session loaded, for as long as it lives. */
  health(): BackendHealth {
    return { models: this.statuses, replicas: [] };
  }

  async infer({ model, version, input }: InferenceRequest): Promise<InferenceResponse> {
    const versions = this.models.get(model.name);
    if (!versions) throw jobFailure('MODEL_UNAVAILABLE', model.name, 'not loaded by this worker');
    const chosen = version ?? versions.keys().next().value!;
    const loaded = versions.get(chosen);
    if (!loaded) throw jobFailure('MODEL_VERSION_NOT_FOUND', model.name, chosen);
    if (isEncoded(input)) {
      throw jobFailure('INFERENCE_FAILED', 'ONNX Runtime takes a tensor, not encoded images');
    }

    let outputs: ort.InferenceSession.OnnxValueMapType;
    try {
      outputs = await loaded.session.run({
        [loaded.inputName]: new ort.Tensor('float32', input.data, input.dims),
      });
    } catch (err) {
      // A shape or type error does not go away on retry.
      throw jobFailure('INFERENCE_FAILED', `ONNX Runtime: ${(err as Error).message}`);
    }
    const output = outputs[loaded.outputName];
    if (output?.type !== 'float32') {
      throw jobFailure('INFERENCE_FAILED', `output ${loaded.outputName} is missing or not float32`);
    }
    return {
      version: chosen,
      output: { data: output.data as Float32Array, dims: output.dims },
    };
  }

  async close(): Promise<void> {
    const sessions = [...this.models.values()].flatMap((v) => [...v.values()]);
    this.models.clear();
    this.statuses = {};
    await Promise.allSettled(sessions.map((s) => s.session.release()));
  }
}

function fixedBatchOf(session: ort.InferenceSession, inputName: string): number | undefined {
  const meta = session.inputMetadata.find((m) => m.name === inputName);
  const batch = meta?.isTensor ? meta.shape[0] : undefined;
  return typeof batch === 'number' && batch > 0 ? batch : undefined;
}

/** Checks the session's input against the registry's input spec, where the model fixes a size. */
function describeMismatch(
  loaded: LoadedVersion,
  session: ort.InferenceSession,
  input: InputSpec,
): string | undefined {
  if (!session.inputNames.includes(loaded.inputName)) {
    return `no input named "${loaded.inputName}" (inputs: ${session.inputNames.join(', ')})`;
  }
  if (!session.outputNames.includes(loaded.outputName)) {
    return `no output named "${loaded.outputName}" (outputs: ${session.outputNames.join(', ')})`;
  }
  const meta = session.inputMetadata.find((m) => m.name === loaded.inputName);
  if (!meta?.isTensor) return undefined;
  const expected =
    input.layout === 'NCHW' ? [3, input.height, input.width] : [input.height, input.width, 3];
  const actual = meta.shape.slice(1);
  const conflicts =
    meta.shape.length !== 4 ||
    actual.some((dim, i) => typeof dim === 'number' && dim > 0 && dim !== expected[i]);
  return conflicts
    ? `input "${loaded.inputName}" has shape [${meta.shape.join(', ')}], the registry says ` +
        `[N, ${expected.join(', ')}] (${input.layout})`
    : undefined;
}
