import { Worker } from 'node:worker_threads';
import { UnrecoverableError } from 'bullmq';
import type { ModelStatus } from '../../shared/backends/backend-status.js';
import { jobFailure } from '../../shared/errors/index.js';
import type { ModelDefinition } from '../../shared/models/model-spec.js';
import type {
  BackendHealth,
  InferenceBackend,
  InferenceRequest,
  InferenceResponse,
} from './inference-backend.js';
import type { OnnxRuntimeBackendOptions } from './onnx-runtime.backend.js';

/** A call to the inference thread, and its answer. */
export type ThreadCall = { id: number } & (
  | { op: 'load'; models: readonly ModelDefinition[] }
  | { op: 'infer'; request: InferenceRequest }
  | { op: 'close' }
);
export type ThreadReply =
  | { id: number; ok: true; value: unknown }
  | { id: number; ok: false; message: string; unrecoverable: boolean };

/**
 * Starts the thread's module as this one runs: compiled JavaScript directly; TypeScript (`npm
 * start`, tests) through tsx, whose loader a worker thread does not inherit from its parent.
 */
function startThread(workerData: unknown): Worker {
  if (!import.meta.url.endsWith('.ts')) {
    return new Worker(new URL('./onnx-runtime-thread.worker.js', import.meta.url), { workerData });
  }
  const entry = new URL('./onnx-runtime-thread.worker.ts', import.meta.url).href;
  const bootstrap = `import('tsx/esm/api').then((tsx) => { tsx.register(); return import(${JSON.stringify(entry)}); });`;
  return new Worker(bootstrap, { eval: true, workerData });
}

interface Pending {
  resolve(value: unknown): void;
  reject(err: Error): void;
}

/**
 * ONNX Runtime in a thread of its own: the same backend (sessions, versions, checks, errors) as
 * {@link OnnxRuntimeBackend}, whose synchronous `run` would otherwise hold the worker's event loop
 * for every inference. The input tensor goes to the thread and the output comes back without a
 * copy (transferred); calls are answered in order, one model run at a time, as before.
 */
export class OnnxRuntimeThreadBackend implements InferenceBackend {
  readonly kind = 'onnx' as const;
  private readonly thread: Worker;
  private readonly pending = new Map<number, Pending>();
  private nextId = 0;
  private statuses: Record<string, ModelStatus> = {};
  /** Set once the thread has stopped: every later call fails with it. */
  private stopped: Error | undefined;

  constructor(options: OnnxRuntimeBackendOptions) {
    this.thread = startThread(options);
    this.thread.on('message', (reply: ThreadReply) => this.settle(reply));
    this.thread.on('error', (err) => this.stop(err));
    this.thread.on('exit', (code) => this.stop(new Error(`inference thread exited (${code})`)));
  }

  async load(models: readonly ModelDefinition[]): Promise<Record<string, ModelStatus>> {
    const statuses = (await this.call({ op: 'load', models })) as Record<string, ModelStatus>;
    this.statuses = { ...this.statuses, ...statuses };
    return statuses;
  }

  /** In-process sessions: a model is ready once its session loaded, for as long as it lives. */
  health(): BackendHealth {
    return { models: this.statuses, replicas: [] };
  }

  /** One thread runs the sessions: calls beyond one wait for it. */
  concurrentCalls(): number {
    return 1;
  }

  async infer(request: InferenceRequest): Promise<InferenceResponse> {
    const { input } = request;
    const transfer =
      'data' in input && input.data.byteLength === input.data.buffer.byteLength
        ? [input.data.buffer as ArrayBuffer]
        : [];
    return (await this.call({ op: 'infer', request }, transfer)) as InferenceResponse;
  }

  async close(): Promise<void> {
    if (!this.stopped) await this.call({ op: 'close' }).catch(() => undefined);
    await this.thread.terminate();
  }

  private call(call: DistributiveOmit<ThreadCall, 'id'>, transfer: ArrayBuffer[] = []) {
    if (this.stopped) {
      return Promise.reject(jobFailure('BACKEND_UNAVAILABLE', this.stopped.message));
    }
    const id = this.nextId++;
    return new Promise<unknown>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.thread.postMessage({ ...call, id }, transfer);
    });
  }

  private settle(reply: ThreadReply): void {
    const pending = this.pending.get(reply.id);
    if (!pending) return;
    this.pending.delete(reply.id);
    if (reply.ok) pending.resolve(reply.value);
    // The thread's job failures keep their kind: an input that can never succeed stays final.
    else
      pending.reject(
        reply.unrecoverable ? new UnrecoverableError(reply.message) : new Error(reply.message),
      );
  }

  private stop(err: Error): void {
    this.stopped ??= err;
    for (const pending of this.pending.values()) {
      pending.reject(
        jobFailure('BACKEND_UNAVAILABLE', `the inference thread stopped: ${err.message}`),
      );
    }
    this.pending.clear();
  }
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
