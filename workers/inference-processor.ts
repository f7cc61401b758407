import { performance } from 'node:perf_hooks';
import type { Job } from 'bullmq';
import { jobFailure } from '../shared/errors/index.js';
import type { InferenceResult, Prediction } from '../shared/jobs/inference-result.js';
import type { JobSpec } from '../shared/jobs/job-spec.js';
import type { Logger } from '../shared/logging/logger.js';
import type { ModelDefinition } from '../shared/models/model-spec.js';
import type { ModelRegistry } from '../shared/models/registry.js';
import {
  ObjectNotFoundError,
  type ObjectStore,
  StorageUnavailableError,
} from '../shared/storage/index.js';
import type { BatchSeat, DynamicBatcher } from './backends/dynamic-batcher.js';
import type { InferenceBackend, InferenceRequest } from './backends/inference-backend.js';
import {
  classify,
  decodeYolov8,
  type ImageTransform,
  type OutputTensor,
} from './postprocess/index.js';
import { describeTransform, preprocess } from './preprocess/preprocess.js';

export interface InferenceProcessorDeps {
  registry: ModelRegistry;
  store: ObjectStore;
  backend: InferenceBackend;
  /** Batches the jobs that are ready together into one backend call. Absent: one call per job. */
  batcher?: DynamicBatcher;
  maxPixels: number;
  logger: Logger;
  /** The last check before the model runs (a cancel request stops the job here). */
  beforeInference?(job: Job<JobSpec, InferenceResult>): Promise<void>;
}

/** Runs one job; `inlineImage`: the job's image when it travelled with the job, not via storage. */
export type InferenceProcessor = (
  job: Job<JobSpec, InferenceResult>,
  inlineImage?: Buffer,
) => Promise<InferenceResult>;

/**
 * One job, in the order it happens: fetch the image, preprocess it to the model's input, run the
 * backend, postprocess. Each stage turns its failures into catalogue errors that say whether a retry
 * can help; nothing is swallowed, so BullMQ sees every failure.
 */
export function createInferenceProcessor(deps: InferenceProcessorDeps): InferenceProcessor {
  return async (job, inlineImage) => {
    const model = deps.registry.get(job.data.model);
    if (!model) throw jobFailure('MODEL_NOT_FOUND', job.data.model);
    // Taken before the image is fetched, so a batch that forms meanwhile may wait for this job.
    const seat = deps.batcher?.seat(model.name) ?? unbatched(deps.backend);
    try {
      return await run(job, model, seat, inlineImage);
    } finally {
      seat.release();
    }
  };

  async function run(
    job: Job<JobSpec, InferenceResult>,
    model: ModelDefinition,
    seat: BatchSeat,
    inlineImage: Buffer | undefined,
  ): Promise<InferenceResult> {
    const { data } = job;
    // The job's fields go into its one line as it ends: no child logger per job on the hot path.
    const fields = {
      jobId: job.id,
      requestId: data.requestId,
      model: data.model,
      attempt: job.attemptsMade + 1,
    };
    if (deps.logger.isLevelEnabled('debug')) deps.logger.debug(fields, 'job started');
    const clock = stopwatch();
    const image = inlineImage ?? (await fetchImage(deps.store, data.imageKey));
    const fetchMs = clock.lap();

    // A model whose server decodes images itself gets the bytes; the rest a tensor made here.
    const encoded = deps.backend.takesEncodedImages?.(model) ?? false;
    let input: InferenceRequest['input'];
    let transform: ImageTransform;
    try {
      const limits = { maxPixels: deps.maxPixels };
      if (encoded) {
        transform = await describeTransform(image, model.input, limits);
        input = { encoded: [image] };
      } else {
        const tensor = await preprocess(image, model.input, limits);
        ({ transform } = tensor);
        input = tensor;
      }
    } catch (err) {
      throw jobFailure('INVALID_IMAGE', (err as Error).message);
    }
    const preprocessMs = clock.lap();

    await deps.beforeInference?.(job);
    const { version, output, batchSize, waitedMs } = await seat.infer({
      model,
      version: data.version,
      input,
    });
    // The batch wait is the part of this lap before the backend call started.
    const inferenceMs = Math.max(0, clock.lap() - waitedMs);

    const result = postprocess(model, output, transform, data.params);
    const timings = {
      fetch_ms: fetchMs,
      preprocess_ms: preprocessMs,
      batch_wait_ms: waitedMs,
      inference_ms: inferenceMs,
      postprocess_ms: clock.lap(),
      batch_size: batchSize,
    };
    deps.logger.info({ ...fields, version, timings }, 'job done');
    return {
      version,
      backend: deps.backend.kind,
      result,
      timings,
      startedAt: job.processedOn ?? Date.now(),
      finishedAt: Date.now(),
      // BullMQ counts the attempt once it ends; this is it.
      attempts: job.attemptsMade + 1,
    };
  }
}

/** A seat that is no batch: each job's own backend call. */
function unbatched(backend: InferenceBackend): BatchSeat {
  return {
    infer: async (request) => ({ ...(await backend.infer(request)), batchSize: 1, waitedMs: 0 }),
    release() {},
  };
}

async function fetchImage(store: ObjectStore, key: string): Promise<Buffer> {
  try {
    return await store.get(key);
  } catch (err) {
    if (err instanceof ObjectNotFoundError) {
      throw jobFailure('INVALID_IMAGE', 'the uploaded image is no longer in storage');
    }
    if (err instanceof StorageUnavailableError) {
      throw jobFailure('STORAGE_UNAVAILABLE', err.reason);
    }
    throw err;
  }
}

function postprocess(
  model: ModelDefinition,
  output: OutputTensor,
  transform: ImageTransform,
  params: JobSpec['params'],
): Prediction {
  const spec = model.postprocess;
  try {
    switch (model.task) {
      case 'classification':
        return {
          task: 'classification',
          predictions: classify(output, {
            activation: spec.activation,
            topK: params.topK ?? spec.top_k,
            labels: model.labels,
          }),
        };
      case 'detection':
        return {
          task: 'detection',
          detections: decodeYolov8(output, {
            scoreThreshold: params.threshold ?? spec.score_threshold,
            iouThreshold: spec.iou_threshold,
            maxDetections: spec.max_detections,
            transform,
            labels: model.labels,
          }),
        };
      case 'embedding':
        return { task: 'embedding', embedding: Array.from(output.data) };
      case 'raw':
        return {
          task: 'raw',
          outputs: { output: { dims: [...output.dims], data: Array.from(output.data) } },
        };
    }
  } catch (err) {
    // The model's output does not fit its registry entry (labels, format): no retry will change it.
    throw jobFailure('INFERENCE_FAILED', `postprocessing: ${(err as Error).message}`);
  }
}

function stopwatch() {
  let last = performance.now();
  return {
    lap(): number {
      const now = performance.now();
      const ms = Math.round((now - last) * 1000) / 1000;
      last = now;
      return ms;
    },
  };
}
