import { createHash } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IdempotencyKeys } from '../../api/jobs/idempotency-keys.js';
import { loadConfig } from '../../shared/config/config.js';
import { redisOptions, waitForRedis } from '../../shared/redis/redis.js';
import { eventually } from '../support/inference-stack.js';
import { cleanRedisPrefix, uniquePrefix } from '../support/services.js';
import { sharedServices } from '../support/shared-services.js';
import { TcpProxy } from '../support/tcp-proxy.js';

const services = sharedServices();
let redis: Redis;
const prefix = uniquePrefix();

beforeAll(async () => {
  redis = new Redis(services.redisUrl);
});
afterAll(async () => {
  redis?.disconnect();
  await cleanRedisPrefix(services.redisUrl, prefix);
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
    // job-c is never made: its lease runs out (a Redis expiry, so real time) and frees the key.
    await eventually(
      async () =>
        (await keys.claim('anonymous', 'key-2', 'job-d', 'fp')).kind === 'claimed'
          ? true
          : undefined,
      2_000,
      'the lease running out',
    );
  });
});

describe('regression: a commit or release that fails while Redis is away', () => {
  it('is tried again until it lands once Redis is back, within the claim lease', async () => {
    // The API's own kind of connection (no offline queue: a command fails at once while the
    // connection is down), through a proxy that can cut it.
    const proxy = await TcpProxy.start(services.redisUrl);
    const config = loadConfig({
      REDIS_URL: `redis://127.0.0.1:${proxy.port}`,
      REDIS_PREFIX: prefix,
    });
    const lossy = new Redis(config.redis.url, redisOptions(config.redis, 'command'));
    lossy.on('error', () => undefined);
    try {
      await waitForRedis(lossy, 5_000);
      const keys = new IdempotencyKeys(lossy, prefix, { retentionSeconds: 60 });
      const hash = (key: string) =>
        `${prefix}:idempotency:anonymous:${createHash('sha256').update(key).digest('hex')}`;
      expect((await keys.claim('anonymous', 'commit-me', 'job-1', 'fp')).kind).toBe('claimed');
      expect((await keys.claim('anonymous', 'release-me', 'job-2', 'fp')).kind).toBe('claimed');

      await proxy.down();
      // Neither lands now: the job exists (commit) or was never made (release), Redis is away.
      expect(await keys.commit('anonymous', 'commit-me', 'job-1')).toBe(false);
      expect(await keys.release('anonymous', 'release-me', 'job-2')).toBe(false);
      expect(await redis.hget(hash('commit-me'), 'state')).toBe('pending');
      expect(await redis.exists(hash('release-me'))).toBe(1);
      await proxy.up();

      // Back: both land without being asked again, long before the 60 s lease would free them.
      await eventually(
        async () =>
          (await redis.hget(hash('commit-me'), 'state')) === 'committed' &&
          (await redis.exists(hash('release-me'))) === 0
            ? true
            : undefined,
        10_000,
        'the commit and the release landed',
      );
      expect(await redis.ttl(hash('commit-me'))).toBeGreaterThan(50);
    } finally {
      lossy.disconnect();
      await proxy.close();
    }
  });
});
