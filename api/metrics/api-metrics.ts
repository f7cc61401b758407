import type { JobState } from 'bullmq';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { CircuitState } from '../../shared/backends/backend-health.js';
import type { ResultCacheOutcome } from '../../shared/cache/result-cache.js';
import type { ErrorCode } from '../../shared/errors/index.js';
import {
  type BackendLabel,
  backendLabel,
  type ModelLabeler,
  modelLabeler,
  statusLabel,
  UNKNOWN,
} from '../../shared/metrics/labels.js';
import type { BackendKind } from '../../shared/models/model-spec.js';

/** The job states a queue is counted in (BullMQ's names; a paused queue's jobs stay waiting). */
export const QUEUE_STATES = [
  'waiting',
  'prioritized',
  'delayed',
  'active',
  'completed',
  'failed',
  'waiting-children',
] as const satisfies readonly JobState[];
export type QueueState = (typeof QUEUE_STATES)[number];

/** A circuit breaker's state, exported as a number so it can be graphed and alerted on. */
export const CIRCUIT_STATES: Readonly<Record<CircuitState, number>> = {
  closed: 0,
  half_open: 1,
  open: 2,
};

/** Request duration buckets (seconds): a fast sync inference up to the longest sync wait. */
const REQUEST_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

export interface ApiMetricsOptions {
  /** The registered model names: the only values the `model` label takes besides `unknown`. */
  models: Iterable<string>;
  /**
   * The configured replicas per backend (e.g. TF Serving URLs): the only values the `replica`
   * label of the circuit-state gauge takes besides `unknown`.
   */
  replicas?: Partial<Record<BackendKind, readonly string[]>>;
}

/** One answered HTTP request, as the API's request hook sees it. */
export interface HttpRequestSample {
  method: string;
  /** The route's template (`/predict/:model`), or undefined when no route matched. */
  route: string | undefined;
  status: number;
  /** The catalogue code of a problem answer. */
  problemCode?: ErrorCode | null | undefined;
}

/** One answered inference request (POST /predict, POST /jobs). */
export interface InferenceRequestSample {
  backend: string | undefined;
  model: string | undefined;
  mode: 'sync' | 'async';
  status: number;
  durationSeconds: number;
}

/**
 * Every metric the API process exports, on the registry it is given (one per process, or one per
 * app in tests). Names and labels are fixed here; callers use the methods, which bound the label
 * values, rather than the metric objects.
 */
export function createApiMetrics(register: Registry, options: ApiMetricsOptions) {
  const registers = [register];
  const model: ModelLabeler = modelLabeler(options.models);
  const replicas = new Map(
    Object.entries(options.replicas ?? {}).map(([backend, list]) => [backend, new Set(list)]),
  );

  const total = new Counter({
    name: 'ai_gateway_total',
    help: 'HTTP requests answered by the API, by method, route template and status (probes and scrapes excluded).',
    labelNames: ['method', 'route', 'status'] as const,
    registers,
  });
  const errors = new Counter({
    name: 'ai_gateway_errors_total',
    help: 'Problem-details answers, by error code.',
    labelNames: ['code'] as const,
    registers,
  });
  const requests = new Counter({
    name: 'ai_gateway_requests_total',
    help: 'Inference requests, by backend (none: answered before one was chosen), model and HTTP status.',
    labelNames: ['backend', 'model', 'status'] as const,
    registers,
  });
  const requestDuration = new Histogram({
    name: 'ai_gateway_request_duration_seconds',
    help: 'Inference request duration in the API, from arrival to answer, by backend, model and mode (sync waits for the job, async answers 202 at once).',
    labelNames: ['backend', 'model', 'mode'] as const,
    buckets: REQUEST_BUCKETS,
    registers,
  });
  let jobEventStreams: () => number = () => 0;
  const eventStreams = new Gauge({
    name: 'ai_gateway_job_event_streams',
    help: "Job event streams (GET /jobs/{id}/events) open in this process: each one watch on the process's one job-event listener.",
    registers,
    collect() {
      eventStreams.set(jobEventStreams());
    },
  });
  const queueJobs = new Gauge({
    name: 'ai_gateway_queue_jobs',
    help: 'Jobs in each queue by state, read from Redis at scrape time.',
    labelNames: ['queue', 'state'] as const,
    registers,
  });
  const rateLimited = new Counter({
    name: 'ai_gateway_rate_limited_total',
    help: 'Requests refused by the rate limiter, by route template.',
    labelNames: ['route'] as const,
    registers,
  });
  const backendWorkers = new Gauge({
    name: 'ai_gateway_backend_workers',
    help: 'Live worker processes per backend, reported by the workers.',
    labelNames: ['backend'] as const,
    registers,
  });
  const modelReady = new Gauge({
    name: 'ai_gateway_model_ready',
    help: '1 when at least one live worker can serve the model on the backend, else 0.',
    labelNames: ['backend', 'model'] as const,
    registers,
  });
  const circuitState = new Gauge({
    name: 'ai_gateway_circuit_state',
    help: 'Circuit breaker state per backend replica, reported by the workers: 0 closed, 1 half-open, 2 open.',
    labelNames: ['backend', 'replica'] as const,
    registers,
  });
  const resultCacheLookups = new Counter({
    name: 'ai_gateway_result_cache_lookups_total',
    help: 'Inference requests by what the result cache did for them: hit (answered from it, nothing run), miss (run, then remembered), bypass (Cache-Control: no-cache or no-store: run, then remembered).',
    labelNames: ['model', 'outcome'] as const,
    registers,
  });
  const collectFailures = new Counter({
    name: 'ai_gateway_metrics_collect_failures_total',
    help: 'Scrape-time reads that failed or timed out (their gauges are left out of that scrape).',
    labelNames: ['source'] as const,
    registers,
  });

  return {
    register,
    modelLabel: model,

    /** Every answered request (ai_gateway_total) and every problem answer (errors_total). */
    recordHttpRequest(sample: HttpRequestSample): void {
      total.inc({
        method: sample.method,
        route: sample.route ?? 'unmatched',
        status: statusLabel(sample.status),
      });
      if (sample.problemCode) errors.inc({ code: sample.problemCode });
    },

    /** An inference request's outcome and duration. */
    recordInferenceRequest(sample: InferenceRequestSample): void {
      const backend: BackendLabel = backendLabel(sample.backend);
      const modelName = model(sample.model);
      requests.inc({ backend, model: modelName, status: statusLabel(sample.status) });
      requestDuration.observe(
        { backend, model: modelName, mode: sample.mode },
        sample.durationSeconds,
      );
    },

    /** What the result cache did for one inference request. */
    recordResultCacheLookup(modelName: string, outcome: ResultCacheOutcome): void {
      resultCacheLookups.inc({ model: model(modelName), outcome });
    },

    /** A request the rate limiter refused. */
    recordRateLimited(route: string | undefined): void {
      rateLimited.inc({ route: route ?? 'unmatched' });
    },

    /** Replaces the queue-depth gauges with a fresh read (queue -> state -> count). */
    setQueueCounts(counts: ReadonlyMap<string, Partial<Record<QueueState, number>>>): void {
      queueJobs.reset();
      for (const [queue, byState] of counts) {
        for (const state of QUEUE_STATES) queueJobs.set({ queue, state }, byState[state] ?? 0);
      }
    },

    /** Drops the queue-depth gauges (the read failed: no number beats a stale one). */
    clearQueueCounts(): void {
      queueJobs.reset();
    },

    /** Live workers per backend and which models they can serve. */
    setBackendHealth(backend: BackendKind, workers: number, models: Record<string, boolean>): void {
      backendWorkers.set({ backend }, workers);
      for (const [name, ready] of Object.entries(models)) {
        const label = model(name);
        if (label !== UNKNOWN) modelReady.set({ backend, model: label }, ready ? 1 : 0);
      }
    },

    /**
     * A circuit breaker's state for one replica of a backend. `replica` must be one of the
     * configured replicas for that backend (see {@link ApiMetricsOptions.replicas}); anything
     * else is counted under `unknown`.
     */
    setCircuitState(backend: BackendKind, replica: string, state: CircuitState): void {
      const label = replicas.get(backend)?.has(replica) ? replica : UNKNOWN;
      circuitState.set({ backend, replica: label }, CIRCUIT_STATES[state]);
    },

    /** Forgets every circuit-state series (before re-reading the reports). */
    clearCircuitStates(): void {
      circuitState.reset();
    },

    /** Where ai_gateway_job_event_streams is read from at scrape time. */
    countJobEventStreams(count: () => number): void {
      jobEventStreams = count;
    },

    recordCollectFailure(source: 'queues'): void {
      collectFailures.inc({ source });
    },
  };
}

export type ApiMetrics = ReturnType<typeof createApiMetrics>;
