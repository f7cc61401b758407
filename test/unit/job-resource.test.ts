import { describe, expect, it } from 'vitest';
import type { JobRecord } from '../../shared/jobs/job-records.js';
import { describeJob } from '../../shared/jobs/job-resource.js';
import type { FoundJob } from '../../shared/queues/inference-queues.js';
import { testSpec } from '../support/job-spec.js';

const CREATED = Date.parse('2026-03-01T12:00:00Z');

function record(lifecycle: JobRecord['lifecycle'] = {}): JobRecord {
  return {
    id: 'job-1',
    spec: testSpec({
      model: 'text_orientation',
      requestId: 'req-1',
      mode: 'async',
      priority: 3,
      deadline: CREATED + 60_000,
      webhook: { url: 'https://example.com/hook', events: ['completed'] },
      owner: 'anonymous',
    }),
    backend: 'onnx',
    route: [{ backend: 'onnx', at: CREATED }],
    createdAt: CREATED,
    lifecycle,
  };
}

function found(state: FoundJob['state'], extra: Record<string, unknown> = {}): FoundJob {
  const job = {
    id: 'job-1',
    data: {
      model: 'text_orientation',
      imageKey: 'k',
      params: {},
      requestId: 'req-1',
      mode: 'async',
    },
    opts: { priority: 3 },
    timestamp: CREATED,
    processedOn: CREATED + 5,
    finishedOn: CREATED + 20,
    attemptsMade: 1,
    returnvalue:
      state === 'completed'
        ? {
            version: '1',
            backend: 'onnx',
            result: { task: 'classification', predictions: [] },
            timings: { fetch_ms: 1, preprocess_ms: 2, inference_ms: 3, postprocess_ms: 0 },
          }
        : null,
    failedReason: undefined,
    ...extra,
  };
  return { backend: 'onnx', job, state } as unknown as FoundJob;
}

describe('describeJob: the job resource from record and queue', () => {
  it('a queued job removed from its queue by a cancel is canceled, from the record alone', () => {
    const job = describeJob({
      record: record({ cancelRequestedAt: CREATED + 1, canceledAt: CREATED + 2 }),
    });
    expect(job).toMatchObject({
      status: 'canceled',
      result: null,
      error: { code: 'JOB_CANCELED' },
      completed_at: new Date(CREATED + 2).toISOString(),
      priority: 3,
      deadline: new Date(CREATED + 60_000).toISOString(),
      webhook: { url: 'https://example.com/hook', events: ['completed'] },
    });
  });

  it('a running job whose cancel was accepted is reported canceled at once', () => {
    const job = describeJob({
      record: record({ cancelRequestedAt: CREATED + 10 }),
      found: found('active'),
    });
    expect(job?.status).toBe('canceled');
    expect(job?.completed_at).toBe(new Date(CREATED + 10).toISOString());
  });

  it('a job that failed after its cancel was accepted is reported canceled, as the cancel answered', () => {
    const job = describeJob({
      record: record({ cancelRequestedAt: CREATED + 10 }),
      found: found('failed', { failedReason: 'INFERENCE_FAILED: boom' }),
    });
    expect(job?.status).toBe('canceled');
  });

  it('a job its worker ended JOB_CANCELED is canceled', () => {
    const job = describeJob({
      record: record({ cancelRequestedAt: CREATED + 10, canceledAt: CREATED + 15 }),
      found: found('failed', {
        failedReason: 'JOB_CANCELED: The job was canceled before it finished',
      }),
    });
    expect(job).toMatchObject({ status: 'canceled', error: { code: 'JOB_CANCELED' } });
  });

  it('success is never turned into canceled', () => {
    const job = describeJob({
      record: record({ cancelRequestedAt: CREATED + 30 }),
      found: found('completed'),
    });
    expect(job?.status).toBe('succeeded');
    expect(job?.result).toEqual({ task: 'classification', predictions: [] });
  });

  it('a job being added (record, no queue entry yet) is queued; one settled and gone has expired', () => {
    expect(describeJob({ record: record() })?.status).toBe('queued');
    expect(describeJob({ record: record({ settled: 'succeeded' }) })).toBeUndefined();
  });

  it('carries the webhook deliveries', () => {
    const delivery = {
      webhook_id: 'msg_job-1_completed',
      event: 'completed' as const,
      attempt: 1,
      at: new Date(CREATED + 30).toISOString(),
      duration_ms: 4.2,
      status_code: 204,
      error: null,
      outcome: 'delivered' as const,
    };
    const job = describeJob({
      record: record(),
      found: found('completed'),
      deliveries: [delivery],
    });
    expect(job?.webhook_deliveries).toEqual([delivery]);
  });
});
