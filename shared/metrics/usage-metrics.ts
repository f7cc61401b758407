import { Counter, type Registry } from 'prom-client';
import type { CountedJob } from '../usage/usage-ledger.js';
import { modelLabeler } from './labels.js';

/** The `tenant` label of a token's tenant that is not a configured key (see {@link tenantLabeler}). */
export const TOKEN_TENANTS = 'token';
const ANONYMOUS = 'anonymous';

export interface UsageMetricsOptions {
  /** The registered model names; any other is `unknown`. */
  models: Iterable<string>;
  /** The configured API key ids (API_KEYS and the keys file). */
  tenants: Iterable<string>;
}

/**
 * The label of a tenant: its id when it is a configured API key (or `anonymous`), else `token`.
 * A JWT's tenant is any id its issuer signs, so those share one series: the label set stays
 * bounded by the keys file, and GET /usage has each token tenant's own figures.
 */
export function tenantLabeler(configured: Iterable<string>): (tenant: string) => string {
  const known = new Set(configured);
  return (tenant) => (tenant === ANONYMOUS || known.has(tenant) ? tenant : TOKEN_TENANTS);
}

/**
 * Usage per key as Prometheus counters, the figures GET /usage reads from Redis: counted by the
 * process that ended the job (a worker; the API for a queued job canceled, an orphan failed or an
 * answer from the result cache), once per job, so a sum over every process's /metrics is the total.
 */
export function createUsageMetrics(register: Registry, options: UsageMetricsOptions) {
  const registers = [register];
  const model = modelLabeler(options.models);
  const tenant = tenantLabeler(options.tenants);
  const labelNames = ['tenant', 'model'] as const;
  const requests = new Counter({
    name: 'ai_gateway_usage_requests_total',
    help: 'Accepted submissions that ended, per tenant (configured key id, anonymous, or token) and model.',
    labelNames,
    registers,
  });
  const images = new Counter({
    name: 'ai_gateway_usage_images_total',
    help: 'Images a model ran on to a result (answers from the result cache excluded), per tenant and model.',
    labelNames,
    registers,
  });
  const jobs = new Counter({
    name: 'ai_gateway_usage_jobs_total',
    help: 'Jobs by how they ended (succeeded, failed, canceled), per tenant and model.',
    labelNames: ['tenant', 'model', 'status'] as const,
    registers,
  });
  const inference = new Counter({
    name: 'ai_gateway_usage_inference_seconds_total',
    help: 'Model time of the jobs that succeeded, per tenant and model.',
    labelNames,
    registers,
  });
  const uploaded = new Counter({
    name: 'ai_gateway_usage_uploaded_bytes_total',
    help: 'Bytes of the images of ended submissions, as uploaded, per tenant and model.',
    labelNames,
    registers,
  });

  return {
    register,
    /** One job's end, as the usage ledger counted it. */
    recordJob(job: CountedJob): void {
      const labels = { tenant: tenant(job.tenant), model: model(job.model) };
      requests.inc(labels);
      jobs.inc({ ...labels, status: job.outcome });
      if (job.images > 0) images.inc(labels, job.images);
      if (job.inferenceMs > 0) inference.inc(labels, job.inferenceMs / 1000);
      if (job.uploadedBytes > 0) uploaded.inc(labels, job.uploadedBytes);
    },
  };
}

export type UsageMetrics = ReturnType<typeof createUsageMetrics>;
