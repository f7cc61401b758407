import { describe, expect, it } from 'vitest';
import { describeRedisUrl, pingRedis } from '../../shared/redis/redis.js';
import { closedPort } from '../support/inference-stack.js';
import { sharedServices } from '../support/shared-services.js';

const services = sharedServices();

describe('pingRedis', () => {
  it('answers true for a Redis that is up', async () => {
    expect(await pingRedis(services.redisUrl)).toBe(true);
  });

  it('answers false, within its bound, when nothing listens', async () => {
    const started = Date.now();
    expect(await pingRedis(`redis://127.0.0.1:${await closedPort()}`, 500)).toBe(false);
    expect(Date.now() - started).toBeLessThan(1500);
  });
});

describe('describeRedisUrl', () => {
  it('masks a password and keeps the rest', () => {
    expect(describeRedisUrl('rediss://default:s3cret@cache.internal:6380/2')).toBe(
      'rediss://default:***@cache.internal:6380/2',
    );
    expect(describeRedisUrl('redis://127.0.0.1:6379')).not.toContain('***');
    expect(describeRedisUrl('not a url')).toBe('(invalid Redis URL)');
  });

  it("masks every node's password in a cluster's list", () => {
    expect(describeRedisUrl('redis://:s3cret@10.0.0.1:6379,redis://:s3cret@10.0.0.2:6379')).toBe(
      'redis://:***@10.0.0.1:6379,redis://:***@10.0.0.2:6379',
    );
  });
});
