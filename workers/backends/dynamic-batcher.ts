import { performance } from 'node:perf_hooks';
import { jobFailure, parseJobFailure } from '../../shared/errors/index.js';
import type { ModelDefinition } from '../../shared/models/model-spec.js';
import {
  type InferenceBackend,
  type InferenceRequest,
  type InferenceResponse,
  isEncoded,
} from './inference-backend.js';

/** How one model's jobs are batched. */
export interface BatchLimits {
  /** Most inputs in one backend call; 1: every job on its own. */
  maxSize: number;
  /** Longest the first job of a batch waits for the rest while they are still being prepared. */
  maxDelayMs: number;
}

/** One job's answer out of a batch. */
export interface BatchedResponse extends InferenceResponse {
  /** Inputs in the backend call this job's input went in. */
  batchSize: number;
  /** Time between this job's input being ready and its backend call starting. */
  waitedMs: number;
}

/**
 * A job's place in its worker's batches, taken when the job starts (before its image is fetched
 * and preprocessed): while a job of the model holds a place without having arrived, a batch of
 * that model may wait for it.
 */
export interface BatchSeat {
  /** The job's input is ready: runs it in the next batch of its model, version and shape. */
  infer(request: InferenceRequest): Promise<BatchedResponse>;
  /** The job will not call `infer` (it failed or was canceled first). Idempotent. */
  release(): void;
}

interface Waiting {
  request: InferenceRequest;
  readyAt: number;
  resolve(response: BatchedResponse): void;
  reject(err: unknown): void;
}

interface Batch {
  key: string;
  model: ModelDefinition;
  items: Waiting[];
  maxSize: number;
  /** Its first job has waited `maxDelayMs`. */
  expired: boolean;
  timer: NodeJS.Timeout;
}

/**
 * Dynamic batching in front of a backend, the way Triton's dynamic batcher and Ray Serve's
 * `@serve.batch` do it, with one difference that matters at low load: a batch goes as soon as no
 * other job of its model is on its way in this worker, so a lone job never pays the delay.
 *
 * Jobs whose inputs can share a call (same model, requested version and input shape, or encoded
 * images) form a batch. It is due when it is full (`maxSize`), when every job of the model that
 * holds a seat has arrived, or `maxDelayMs` after its first job arrived, whichever comes first, and
 * goes when the backend has a free call for the model (as Triton's batcher waits for a free model
 * instance): while every call is busy, arriving jobs fill the next batches instead of queueing
 * calls of their own. The backend sees one request whose batch dimension is the number of jobs;
 * each job gets its own slice of the output.
 *
 * Failures stay per job where they can: a backend error that a retry may fix (an outage, a
 * timeout) fails every job of the call, each then retried or moved by its own rules; an input the
 * backend rejects (`INFERENCE_FAILED`) sends every job of the batch again on its own, so only the
 * job whose input is at fault fails.
 */
export class DynamicBatcher {
  /** Seats taken and not yet arrived, per model. */
  private readonly expected = new Map<string, number>();
  /** Batches taking jobs, per model, version and input shape. */
  private readonly open = new Map<string, Batch>();
  /** Full batches waiting for a free call, oldest first. */
  private readonly full: Batch[] = [];
  /** Backend calls running, per model. */
  private readonly running = new Map<string, number>();

  constructor(
    private readonly backend: InferenceBackend,
    private readonly limitsOf: (model: ModelDefinition) => BatchLimits,
  ) {}

  seat(model: string): BatchSeat {
    this.expected.set(model, (this.expected.get(model) ?? 0) + 1);
    let seated = true;
    const leave = () => {
      if (!seated) return false;
      seated = false;
      const left = (this.expected.get(model) ?? 1) - 1;
      if (left > 0) this.expected.set(model, left);
      else this.expected.delete(model);
      return true;
    };
    return {
      infer: (request) => {
        leave();
        return this.join(request);
      },
      release: () => {
        // Nobody else may be coming now: batches that waited for this job may go.
        if (leave()) this.pump(model);
      },
    };
  }

  private join(request: InferenceRequest): Promise<BatchedResponse> {
    const { model } = request;
    const limits = this.limitsOf(model);
    // A model that does not batch (max_size 1) calls the backend at once, as without a batcher:
    // the free-call limit is for batches, so that they fill while the calls run.
    if (limits.maxSize <= 1) return this.alone(request);
    const key = batchKey(request);
    return new Promise<BatchedResponse>((resolve, reject) => {
      let batch = this.open.get(key);
      if (!batch) {
        const created: Batch = {
          key,
          model,
          items: [],
          maxSize: limits.maxSize,
          expired: false,
          timer: setTimeout(() => {
            created.expired = true;
            this.pump(model.name);
          }, limits.maxDelayMs),
        };
        batch = created;
        this.open.set(key, batch);
      }
      batch.items.push({ request, readyAt: performance.now(), resolve, reject });
      if (batch.items.length >= batch.maxSize) this.close(batch);
      this.pump(model.name);
    });
  }

  private async alone(request: InferenceRequest): Promise<BatchedResponse> {
    return { ...(await this.backend.infer(request)), batchSize: 1, waitedMs: 0 };
  }

  /** A full batch takes no more jobs; it goes at the model's next free call. */
  private close(batch: Batch): void {
    this.open.delete(batch.key);
    clearTimeout(batch.timer);
    this.full.push(batch);
  }

  /**
   * Sends the model's batches that are due while it has free calls: full ones first, then open
   * ones that waited long enough or have no seated job left to wait for. A due batch that finds
   * every call busy stays open, taking the jobs that arrive meanwhile.
   */
  private pump(model: string): void {
    for (;;) {
      const batch = this.nextDue(model);
      const running = this.running.get(model) ?? 0;
      const calls = batch ? (this.backend.concurrentCalls?.(batch.model) ?? Infinity) : 0;
      if (!batch || running >= calls) return;
      this.take(batch);
      this.running.set(model, running + 1);
      void this.run(batch.items).finally(() => {
        this.running.set(model, (this.running.get(model) ?? 1) - 1);
        this.pump(model);
      });
    }
  }

  /** The model's next batch to send; undefined: none is due. */
  private nextDue(model: string): Batch | undefined {
    const full = this.full.find((b) => b.model.name === model);
    if (full) return full;
    const waitedFor = this.expected.has(model);
    for (const batch of this.open.values()) {
      if (batch.model.name === model && (batch.expired || !waitedFor)) return batch;
    }
    return undefined;
  }

  /** Takes a batch out of the batcher, to send it. */
  private take(batch: Batch): void {
    const full = this.full.indexOf(batch);
    if (full >= 0) this.full.splice(full, 1);
    else this.open.delete(batch.key);
    clearTimeout(batch.timer);
  }

  private async run(items: Waiting[]): Promise<void> {
    const startedAt = performance.now();
    const answer = (item: Waiting, response: InferenceResponse, size: number) =>
      item.resolve({
        ...response,
        batchSize: size,
        waitedMs: Math.round((startedAt - item.readyAt) * 1000) / 1000,
      });

    if (items.length === 1) {
      const [item] = items as [Waiting];
      try {
        answer(item, await this.backend.infer(item.request), 1);
      } catch (err) {
        item.reject(err);
      }
      return;
    }

    let responses: InferenceResponse[];
    try {
      responses = split(await this.backend.infer(merge(items)), items.length);
    } catch (err) {
      if (parseJobFailure((err as Error).message).code !== 'INFERENCE_FAILED') {
        for (const item of items) item.reject(err);
        return;
      }
      // The backend refused the batch: each input on its own finds the one at fault.
      for (const item of items) await this.run([item]);
      return;
    }
    for (const [i, item] of items.entries()) answer(item, responses[i]!, items.length);
  }
}

/** Jobs that can share one backend call: same model, requested version and input shape. */
function batchKey({ model, version, input }: InferenceRequest): string {
  const shape = isEncoded(input) ? 'encoded' : input.dims.slice(1).join('x');
  return `${model.name}\u0000${version ?? ''}\u0000${shape}`;
}

/** One request carrying every job's input, in order, along the batch dimension. */
function merge(items: readonly Waiting[]): InferenceRequest {
  const first = items[0]!.request;
  if (isEncoded(first.input)) {
    const encoded = items.flatMap(({ request }) =>
      isEncoded(request.input) ? request.input.encoded : [],
    );
    return { ...first, input: { encoded } };
  }
  const tensors = items.map(({ request }) => request.input as { data: Float32Array });
  const data = new Float32Array(tensors.reduce((n, t) => n + t.data.length, 0));
  let offset = 0;
  for (const tensor of tensors) {
    data.set(tensor.data, offset);
    offset += tensor.data.length;
  }
  const [, ...item] = first.input.dims;
  return { ...first, input: { data, dims: [data.length / sizeOf(item), ...item] } };
}

/** The batch's output cut into one batch-of-one output per job. */
function split(response: InferenceResponse, size: number): InferenceResponse[] {
  const { data, dims } = response.output;
  if (dims[0] !== size || data.length % size !== 0) {
    throw jobFailure(
      'INFERENCE_FAILED',
      `the model answered a batch of ${size} inputs with output shape [${dims.join(', ')}]`,
    );
  }
  const each = data.length / size;
  const itemDims = [1, ...dims.slice(1)];
  return Array.from({ length: size }, (_, i) => ({
    version: response.version,
    output: { data: data.subarray(i * each, (i + 1) * each), dims: itemDims },
  }));
}

function sizeOf(dims: readonly number[]): number {
  return dims.reduce((n, d) => n * d, 1);
}

/**
 * A model's batch limits: the configuration's overrides (`BATCH_MAX_SIZE`, `BATCH_MAX_DELAY_MS`)
 * over its registry entry, capped by what the backend takes for it.
 */
export function batchLimitsOf(
  model: ModelDefinition,
  overrides: { maxSize?: number; maxDelayMs?: number },
  backend: InferenceBackend,
): BatchLimits {
  const wanted = overrides.maxSize ?? model.batching.max_size;
  return {
    maxSize: Math.min(wanted, backend.maxBatchSize?.(model) ?? wanted),
    maxDelayMs: overrides.maxDelayMs ?? model.batching.max_delay_ms,
  };
}
