import { ANONYMOUS_OWNER } from '../../shared/jobs/job-records.js';
import type { JobSpec } from '../../shared/jobs/job-spec.js';

/** A job's spec for a test that makes jobs without the API: a sync job of model `m`, as overridden. */
export function testSpec(overrides: Partial<JobSpec> = {}): JobSpec {
  return {
    model: 'm',
    params: {},
    mode: 'sync',
    owner: ANONYMOUS_OWNER,
    requestId: 'r',
    imageKey: 'images/none',
    ...overrides,
  };
}
