import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { BackendKind } from '../models/model-spec.js';
import { codeLabel, type ModelLabeler, modelLabeler } from './labels.js';

/** Backend-call and preprocessing buckets (seconds): sub-millisecond models up to slow servers. */
const STAGE_BUCKETS = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
];
/** Queue-wait buckets (seconds): an idle pool up to a long backlog. */
const WAIT_BUCKETS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900];
/** Batch sizes, powers of two up to the largest batch a dynamic batcher would form. */
const BATCH_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128];

export interface WorkerMetricsOptions {
  backend: BackendKind;
  /** The registered model names: the only values the `model` label takes besides `unknown`. */
  models: Iterable<string>;
}

/**
 * Every metric an inference worker process exports on its own /metrics. One backend per process,
 * so `backend` is fixed at creation; `model` is bounded to the registry.
 */
export function createWorkerMetrics(register: Registry, options: WorkerMetricsOptions) {
  const registers = [register];
  const { backend } = options;
  const model: ModelLabeler = modelLabeler(options.models);

  const inferenceDuration = new Histogram({
    name: 'ai_gateway_inference_duration_seconds',
    help: 'Duration of one backend call (one batch), by backend and model.',
    labelNames: ['backend', 'model'] as const,
    buckets: STAGE_BUCKETS,
    registers,
  });
  const preprocessDuration = new Histogram({
    name: 'ai_gateway_preprocess_duration_seconds',
    help: 'Image decode and tensor preparation per job, by backend and model.',
    labelNames: ['backend', 'model'] as const,
    buckets: STAGE_BUCKETS,
    registers,
  });
  const batchSize = new Histogram({
    name: 'ai_gateway_batch_size',
    help: 'Inputs per backend call, by backend and model.',
    labelNames: ['backend', 'model'] as const,
    buckets: BATCH_BUCKETS,
    registers,
  });
  const queueWait = new Histogram({
    name: 'ai_gateway_queue_wait_seconds',
    help: 'Time a job waited in its queue before its first attempt started, by backend and model.',
    labelNames: ['backend', 'model'] as const,
    buckets: WAIT_BUCKETS,
    registers,
  });
  const processed = new Counter({
    name: 'ai_gateway_jobs_processed_total',
    help: 'Jobs completed successfully, by backend and model.',
    labelNames: ['backend', 'model'] as const,
    registers,
  });
  const failed = new Counter({
    name: 'ai_gateway_jobs_failed_total',
    help: 'Jobs failed for good (no attempt left, or an error no retry can fix), by backend, model and error code.',
    labelNames: ['backend', 'model', 'code'] as const,
    registers,
  });
  const retried = new Counter({
    name: 'ai_gateway_job_retries_total',
    help: 'Failed attempts that will be retried, by backend, model and error code.',
    labelNames: ['backend', 'model', 'code'] as const,
    registers,
  });
  const active = new Gauge({
    name: 'ai_gateway_worker_active_jobs',
    help: 'Jobs this worker process is working on now.',
    labelNames: ['backend'] as const,
    registers,
  });
  active.set({ backend }, 0);

  return {
    register,
    backend,
    modelLabel: model,

    /** One backend call: its duration and how many inputs it carried. */
    observeInference(modelName: string, seconds: number, inputs: number): void {
      const labels = { backend, model: model(modelName) };
      inferenceDuration.observe(labels, seconds);
      batchSize.observe(labels, inputs);
    },

    observePreprocess(modelName: string, seconds: number): void {
      preprocessDuration.observe({ backend, model: model(modelName) }, seconds);
    },

    observeQueueWait(modelName: string, seconds: number): void {
      queueWait.observe({ backend, model: model(modelName) }, Math.max(0, seconds));
    },

    jobStarted(): void {
      active.inc({ backend });
    },

    jobEnded(): void {
      active.dec({ backend });
    },

    jobCompleted(modelName: string): void {
      processed.inc({ backend, model: model(modelName) });
    },

    /** A failed attempt: `final` when the job will not be tried again. */
    jobFailed(modelName: string, code: string | undefined, final: boolean): void {
      const labels = { backend, model: model(modelName), code: codeLabel(code) };
      (final ? failed : retried).inc(labels);
    },
  };
}

export type WorkerMetrics = ReturnType<typeof createWorkerMetrics>;
