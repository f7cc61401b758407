import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import type { Server } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';

/**
 * Where the real services an integration or end-to-end test talks to are. A test file reads the
 * run's with `sharedServices()` (shared-services.ts); each test keeps to a key prefix and a bucket
 * of its own (`uniquePrefix()`).
 */
export interface TestServices {
  redisUrl: string;
  /**
   * An S3 protocol server. The bucket is not created: the code under test does that with
   * `ObjectStore.init()`, and tests that want isolation use a bucket of their own.
   */
  s3: {
    endpoint: string;
    bucket: string;
    region: string;
    accessKeyId: string;
    secretAccessKey: string;
  };
  /** `containers`: Redis and MinIO in testcontainers; `local`: a running Redis and s3rver. */
  runtime: 'containers' | 'local';
}

/** Services started by {@link startServices}, which stops them. */
export interface StartedServices extends TestServices {
  /** Stops what this call started. Safe to call more than once. */
  stop(): Promise<void>;
}

const S3_BUCKET = 'ai-gateway-test';
const S3_REGION = 'us-east-1';
const REDIS_IMAGE = 'redis:7-alpine';
const MINIO_IMAGE = 'minio/minio';
// MinIO refuses a root password shorter than 8 characters.
const MINIO_USER = 'ai-gateway';
const MINIO_PASSWORD = 'ai-gateway-secret';
/** s3rver's one built-in account: it checks signatures against it. */
export const S3RVER_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } as const;
/** How long the container runtime may take to answer before the local services are used. */
const RUNTIME_PROBE_MS = 5_000;
const REDIS_PROBE_MS = 2_000;

/**
 * Starts Redis and an S3 protocol server, once per run of a project (global-services.ts).
 *
 * Containers are used when a container runtime answers; `TESTCONTAINERS=off` forces the local
 * services and `TESTCONTAINERS=on` forces containers (failing when there is no runtime, so CI does
 * not fall back silently). Locally, Redis must already run at `TEST_REDIS_URL`
 * (default `redis://127.0.0.1:6379`) and s3rver is started in-process on an ephemeral port.
 */
export async function startServices(): Promise<StartedServices> {
  return (await containerRuntimeAvailable()) ? startContainers() : startLocal();
}

/** A fresh prefix for queue names, Redis keys and buckets, so tests never share state. */
export function uniquePrefix(): string {
  return `test-${randomUUID()}`;
}

/** Deletes every Redis key that starts with `prefix`, in batches, without blocking Redis. */
export async function cleanRedisPrefix(redisUrl: string, prefix: string): Promise<void> {
  // An empty prefix would match the whole database.
  if (!prefix) throw new Error('cleanRedisPrefix: prefix must not be empty');
  const redis = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 });
  // Failures surface as rejected commands below; without a listener ioredis also logs each one.
  redis.on('error', () => undefined);
  try {
    await redis.connect();
    const pattern = `${escapeGlob(prefix)}*`;
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) await redis.unlink(...keys);
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
}

async function containerRuntimeAvailable(): Promise<boolean> {
  const mode = process.env.TESTCONTAINERS?.trim().toLowerCase();
  if (mode === 'off') return false;
  // Asking testcontainers costs several seconds of strategy probing when nothing is installed, so
  // without a forced mode look for a hint of a runtime first.
  if (mode !== 'on' && !runtimeHint()) return false;
  try {
    const { getContainerRuntimeClient } = await import('testcontainers');
    await withTimeout(getContainerRuntimeClient(), RUNTIME_PROBE_MS, 'container runtime probe');
    return true;
  } catch (error) {
    if (mode === 'on') {
      throw new Error(`TESTCONTAINERS=on but no container runtime answered: ${message(error)}`);
    }
    return false;
  }
}

/** Whether any of the places testcontainers looks for a runtime exists. */
function runtimeHint(): boolean {
  if (process.env.DOCKER_HOST) return true;
  const home = os.homedir();
  const runtimeDir = process.env.XDG_RUNTIME_DIR;
  const candidates = [
    '/var/run/docker.sock',
    path.join(home, '.testcontainers.properties'),
    path.join(home, '.docker', 'run', 'docker.sock'),
    path.join(home, '.docker', 'desktop', 'docker.sock'),
    ...(runtimeDir
      ? [path.join(runtimeDir, 'docker.sock'), path.join(runtimeDir, 'podman', 'podman.sock')]
      : []),
  ];
  return candidates.some((candidate) => existsSync(candidate));
}

async function startContainers(): Promise<StartedServices> {
  const { GenericContainer, Wait } = await import('testcontainers');
  const started = await Promise.allSettled([
    new GenericContainer(REDIS_IMAGE)
      .withExposedPorts(6379)
      .withWaitStrategy(Wait.forLogMessage('Ready to accept connections'))
      .start(),
    new GenericContainer(MINIO_IMAGE)
      .withCommand(['server', '/data'])
      .withEnvironment({ MINIO_ROOT_USER: MINIO_USER, MINIO_ROOT_PASSWORD: MINIO_PASSWORD })
      .withExposedPorts(9000)
      .withWaitStrategy(Wait.forHttp('/minio/health/live', 9000))
      .start(),
  ]);
  const [redis, minio] = started;
  if (redis.status === 'rejected' || minio.status === 'rejected') {
    // Stop whichever one did start before reporting, so a failed start leaks nothing.
    await Promise.allSettled(
      started.flatMap((result) => (result.status === 'fulfilled' ? [result.value.stop()] : [])),
    );
    const reasons = started.flatMap((result) =>
      result.status === 'rejected' ? [message(result.reason)] : [],
    );
    throw new Error(`Could not start test containers: ${reasons.join('; ')}`);
  }
  const redisContainer = redis.value;
  const minioContainer = minio.value;
  return {
    redisUrl: `redis://${redisContainer.getHost()}:${redisContainer.getMappedPort(6379)}`,
    s3: {
      endpoint: `http://${minioContainer.getHost()}:${minioContainer.getMappedPort(9000)}`,
      bucket: S3_BUCKET,
      region: S3_REGION,
      accessKeyId: MINIO_USER,
      secretAccessKey: MINIO_PASSWORD,
    },
    runtime: 'containers',
    stop: once(async () => {
      await settleAll([redisContainer.stop(), minioContainer.stop()], 'stopping test containers');
    }),
  };
}

async function startLocal(): Promise<StartedServices> {
  const redisUrl = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
  await assertRedisAnswers(redisUrl);

  const directory = await mkdtemp(path.join(os.tmpdir(), 'ai-gateway-s3rver-'));
  const s3rver = new (loadS3rver())({
    address: '127.0.0.1',
    port: 0,
    silent: true,
    directory,
  });
  let address: AddressInfo;
  try {
    address = await s3rver.run();
  } catch (error) {
    await rm(directory, { recursive: true, force: true });
    throw new Error(`Could not start s3rver: ${message(error)}`);
  }
  return {
    redisUrl,
    s3: {
      endpoint: `http://127.0.0.1:${address.port}`,
      bucket: S3_BUCKET,
      region: S3_REGION,
      ...S3RVER_CREDENTIALS,
    },
    runtime: 'local',
    stop: once(async () => {
      // close() waits for idle keep-alive sockets that a test may not have destroyed; drop them
      // so stopping is not held up by someone else's client.
      s3rver.httpServer?.closeAllConnections();
      await settleAll(
        [s3rver.close(), rm(directory, { recursive: true, force: true })],
        'stopping s3rver',
      );
    }),
  };
}

async function assertRedisAnswers(redisUrl: string): Promise<void> {
  const redis = new Redis(redisUrl, {
    lazyConnect: true,
    connectTimeout: REDIS_PROBE_MS,
    commandTimeout: REDIS_PROBE_MS,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    // One try: a missing Redis must fail the suite at once with the hint below, not reconnect.
    retryStrategy: () => null,
  });
  // ioredis reports the socket error as an event and rejects connect() with a bare "Connection is
  // closed", so keep the event's message: it says what went wrong (ECONNREFUSED, auth, ...).
  let cause: unknown;
  redis.on('error', (error: unknown) => {
    cause ??= error;
  });
  try {
    await redis.connect();
    await redis.ping();
  } catch (error) {
    throw new Error(
      `No Redis answers at ${redisUrl} (${message(cause ?? error)}), and the tests run without ` +
        'containers. Start one with: redis-server --daemonize yes --port 6379 --save "" ' +
        '--appendonly no (or set TEST_REDIS_URL to a Redis that tests may write to).',
    );
  } finally {
    redis.disconnect();
  }
}

/** The part of s3rver's API used here; the package ships no type declarations. */
export interface S3rverInstance {
  run(): Promise<AddressInfo>;
  close(): Promise<void>;
  httpServer?: Server;
}
export type S3rverConstructor = new (options: {
  address: string;
  port: number;
  silent: boolean;
  directory: string;
}) => S3rverInstance;

export function loadS3rver(): S3rverConstructor {
  // s3rver is CommonJS without types, so a static import would be an implicit `any`.
  const require = createRequire(import.meta.url);
  return require('s3rver') as S3rverConstructor;
}

function once(fn: () => Promise<void>): () => Promise<void> {
  let result: Promise<void> | undefined;
  return () => {
    result ??= fn();
    return result;
  };
}

/** Waits for every cleanup, then reports all failures together. */
async function settleAll(tasks: Promise<unknown>[], what: string): Promise<void> {
  const failures = (await Promise.allSettled(tasks)).flatMap((result) =>
    result.status === 'rejected' ? [message(result.reason)] : [],
  );
  if (failures.length > 0) throw new Error(`Failed ${what}: ${failures.join('; ')}`);
}

async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took longer than ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function escapeGlob(text: string): string {
  return text.replace(/[*?[\]\\]/g, '\\$&');
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
