import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IdempotencyKeys } from '../../api/jobs/idempotency-keys.js';
import { sleep } from '../support/inference-stack.js';
import {
  cleanRedisPrefix,
  startServices,
  type TestServices,
  uniquePrefix,
} from '../support/services.js';

let services: TestServices;
let redis: Redis;
const prefix = uniquePrefix();

beforeAll(async () => {
  services = await startServices();
  redis = new Redis(services.redisUrl);
});
afterAll(async () => {
  redis?.disconnect();
  await cleanRedisPrefix(services.redisUrl, prefix);
  await services?.stop();
});

describe('idempotency keys', () => {
  it('one claim wins among concurrent ones; the others see its job and fingerprint', async () => {
    const keys = new IdempotencyKeys(redis, prefix, { retentionSeconds: 60 });
    const claims = await Promise.all(
      Array.from({ length: 10 }, (_, i) => keys.claim('anonymous', 'key-1', `job-${i}`, 'fp')),
    );
    const winners = claims.filter((c) => c.kind === 'claimed');
    expect(winners).toHaveLength(1);
    const winner = `job-${claims.indexOf(winners[0]!)}`;
    for (const claim of claims.filter((c) => c.kind === 'taken')) {
      expect(claim).toEqual({ kind: 'taken', jobId: winner, fingerprint: 'fp', committed: false });
    }
    await keys.commit('anonymous', 'key-1', winner);
    expect(await keys.claim('anonymous', 'key-1', 'job-x', 'fp')).toMatchObject({
      committed: true,
    });
    // Another client's key of the same name is another key.
    expect((await keys.claim('someone-else', 'key-1', 'job-y', 'fp')).kind).toBe('claimed');
  });

  it('frees a key whose job was never made: released at once, or when the lease runs out', async () => {
    const keys = new IdempotencyKeys(redis, prefix, { retentionSeconds: 60, pendingLeaseMs: 200 });
    await keys.claim('anonymous', 'key-2', 'job-a', 'fp');
    await keys.release('anonymous', 'key-2', 'job-other'); // not the owner: no effect
    expect((await keys.claim('anonymous', 'key-2', 'job-b', 'fp')).kind).toBe('taken');
    await keys.release('anonymous', 'key-2', 'job-a');
    expect((await keys.claim('anonymous', 'key-2', 'job-c', 'fp')).kind).toBe('claimed');
    await sleep(300);
    expect((await keys.claim('anonymous', 'key-2', 'job-d', 'fp')).kind).toBe('claimed');
  });
});
