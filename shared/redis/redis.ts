import { Cluster, Redis, type RedisOptions } from 'ioredis';
import type { Config } from '../config/config.js';
import { withoutUndefined } from '../objects/without-undefined.js';

/**
 * A connection to a single Redis or to a Redis Cluster. Both run every command this service sends,
 * and BullMQ takes either: on a cluster the prefix's hash tag keeps each job's keys in one slot.
 */
export type RedisClient = Redis | Cluster;

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

/**
 * `lazy`: the client connects on its first command (or `connect()`), not at once: for a template
 * that BullMQ duplicates and never uses itself.
 */
export function createRedis(
  config: Config['redis'],
  purpose: 'command' | 'blocking',
  { lazy = false }: { lazy?: boolean } = {},
): RedisClient {
  const options = redisOptions(config, purpose);
  return config.clusterNodes
    ? createCluster(config.clusterNodes, options, lazy)
    : new Redis(config.url, { ...options, lazyConnect: lazy });
}

/**
 * A cluster client that learns the topology from the seed nodes. The first URL's credentials and
 * TLS apply to every node (a cluster's nodes share them). The command timeout and retry limit go to
 * each node; the offline queue (used while the slots are unknown) is the cluster's.
 */
function createCluster(nodes: string[], options: RedisOptions, lazy: boolean): Cluster {
  const [first] = nodes.map((node) => new URL(node));
  // Each node's offline queue and reconnection belong to the cluster client, which sets them.
  const { connectionName, retryStrategy, enableOfflineQueue, ...perNode } = options;
  return new Cluster(
    nodes.map((node) => {
      const url = new URL(node);
      return { host: url.hostname, port: Number(url.port || 6379) };
    }),
    {
      clusterRetryStrategy: retryStrategy,
      lazyConnect: lazy,
      enableOfflineQueue: enableOfflineQueue ?? true,
      enableReadyCheck: true,
      // Merged over each node's own options with Object.assign: an undefined key would erase one.
      redisOptions: withoutUndefined({
        ...perNode,
        connectionName,
        username: decodeURIComponent(first!.username) || undefined,
        password: decodeURIComponent(first!.password) || undefined,
        tls: first!.protocol === 'rediss:' ? {} : undefined,
      }),
    },
  );
}

/** Resolves once the connection is ready, or rejects after `timeoutMs`. */
export async function waitForRedis(redis: RedisClient, timeoutMs: number): Promise<void> {
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

/** The URL (or the cluster's comma-separated URLs) fit for a log line: any password masked. */
export function describeRedisUrl(url: string): string {
  return url.split(',').map(describeOneUrl).join(',');
}

function describeOneUrl(url: string): string {
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
