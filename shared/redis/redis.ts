import { Redis, type RedisOptions } from 'ioredis';
import type { Config } from '../config/config.js';

export type { Redis } from 'ioredis';

/**
 * `command`: for requests that must fail fast when Redis is away (the API answers 503 instead of
 * hanging): no offline queue, a command timeout, few retries.
 * `blocking`: for BullMQ workers and queue-event listeners, which wait on Redis by design and must
 * reconnect forever (BullMQ requires `maxRetriesPerRequest: null` there).
 */
export function redisOptions(
  config: Config['redis'],
  purpose: 'command' | 'blocking',
): RedisOptions {
  const common: RedisOptions = {
    connectionName: `ai-gateway:${purpose}`,
    retryStrategy: (attempt) => Math.min(attempt * 200, 2000),
  };
  return purpose === 'command'
    ? {
        ...common,
        enableOfflineQueue: false,
        maxRetriesPerRequest: 1,
        commandTimeout: config.commandTimeoutMs,
        connectTimeout: config.commandTimeoutMs,
      }
    : { ...common, maxRetriesPerRequest: null, enableReadyCheck: true };
}

export function createRedis(config: Config['redis'], purpose: 'command' | 'blocking'): Redis {
  return new Redis(config.url, redisOptions(config, purpose));
}

/** Resolves once the connection is ready, or rejects after `timeoutMs`. */
export async function waitForRedis(redis: Redis, timeoutMs: number): Promise<void> {
  if (redis.status === 'ready') return;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`Redis did not become ready within ${timeoutMs} ms`));
    }, timeoutMs);
    const onReady = () => {
      cleanup();
      resolve();
    };
    const cleanup = () => {
      clearTimeout(timer);
      redis.off('ready', onReady);
    };
    redis.on('ready', onReady);
  });
}

/** The URL fit for a log line or an error message: any password masked. */
export function describeRedisUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return '(invalid Redis URL)';
  }
}

/** One PING, bounded: whether a Redis at `url` answers (with its credentials and TLS, if any). */
export async function pingRedis(url: string, timeoutMs = 1000): Promise<boolean> {
  const redis = new Redis(url, {
    lazyConnect: true,
    connectTimeout: timeoutMs,
    commandTimeout: timeoutMs,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    enableOfflineQueue: false,
  });
  redis.on('error', () => undefined);
  try {
    await redis.connect();
    return (await redis.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    redis.disconnect();
  }
}
