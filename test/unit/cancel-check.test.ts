import { describe, expect, it } from 'vitest';
import type { JobLifecycle } from '../../shared/jobs/job-lifecycle.js';
import { CANCEL_CHECK_AFTER_MS, checkNotCanceled } from '../../workers/job-runner.js';

/** A record on which a cancel was requested, counting how often it is asked. */
function canceledRecord() {
  const asked = { n: 0 };
  const lifecycle = {
    isCancelRequested: async () => {
      asked.n++;
      return true;
    },
  } as unknown as JobLifecycle;
  return { lifecycle, asked };
}

const job = (processedOn: number) => ({ id: 'j', processedOn }) as never;

describe('the cancel check before the model', () => {
  it('asks the record once the job has been running a while, and stops a canceled job', async () => {
    const { lifecycle, asked } = canceledRecord();
    const now = 1_000_000;
    await expect(
      checkNotCanceled(lifecycle, job(now - CANCEL_CHECK_AFTER_MS), now),
    ).rejects.toThrow(/^JOB_CANCELED: /);
    expect(asked.n).toBe(1);
  });

  it('leaves a job that started moments ago to the settle step, without a round trip', async () => {
    const { lifecycle, asked } = canceledRecord();
    const now = 1_000_000;
    await checkNotCanceled(lifecycle, job(now - CANCEL_CHECK_AFTER_MS + 1), now);
    expect(asked.n).toBe(0);
  });
});
