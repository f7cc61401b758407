import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm, utimes } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createS3Client,
  InvalidObjectKeyError,
  imageKey,
  LocalObjectStore,
  ObjectNotFoundError,
  S3ObjectStore,
  type S3StorageConfig,
  StorageUnavailableError,
} from '../../shared/storage/index.js';
import { uniquePrefix } from '../support/services.js';
import { sharedServices } from '../support/shared-services.js';

const TIMEOUT_MS = 500;
// The whole call, retries included, must end near the deadline; three times it leaves room for a
// slow CI machine while still failing a store that waits on the SDK's default (no) timeout.
const BOUND_MS = TIMEOUT_MS * 3;

describe('S3ObjectStore against a real S3 protocol server', () => {
  const services = sharedServices();
  let store: S3ObjectStore;
  let config: S3StorageConfig;

  beforeAll(async () => {
    config = {
      kind: 's3',
      ...services.s3,
      // Each run gets its own bucket, so init() really has to create it.
      bucket: uniquePrefix(),
      timeoutMs: 5_000,
    };
    store = new S3ObjectStore(config);
  });

  afterAll(async () => {
    await store?.close();
  });

  it('init creates the missing bucket, and is idempotent', async () => {
    const probe = new S3ObjectStore(config);
    try {
      await expect(probe.ping()).rejects.toBeInstanceOf(StorageUnavailableError);
      await store.init();
      await probe.ping();
      await store.init();
    } finally {
      await probe.close();
    }
  });

  it('init tolerates several processes creating the same bucket at once', async () => {
    const bucket = uniquePrefix();
    const racers = Array.from({ length: 4 }, () => new S3ObjectStore({ ...config, bucket }));
    try {
      await expect(racers[0]!.ping()).rejects.toBeInstanceOf(StorageUnavailableError);
      // Every racer's init resolves, those that lost the CreateBucket race included, and each can
      // then use the one bucket.
      await expect(Promise.all(racers.map((racer) => racer.init()))).resolves.toHaveLength(4);
      for (const [i, racer] of racers.entries()) {
        const body = Buffer.from(`racer ${i}`);
        await racer.put(imageKey(body), body, 'text/plain');
        expect((await racers[0]!.get(imageKey(body))).equals(body)).toBe(true);
      }
    } finally {
      await Promise.all(racers.map((racer) => racer.close()));
    }
  });

  it('round-trips a 1 MB random buffer byte for byte', async () => {
    await store.init();
    const body = randomBytes(1024 * 1024 + 17);
    const key = imageKey(body);
    await store.put(key, body, 'application/octet-stream');
    const read = await store.get(key);
    expect(read.length).toBe(body.length);
    expect(read.equals(body)).toBe(true);
    await store.delete(key);
  });

  // Regression: with the SDK's default checksums a streamed body goes out as aws-chunked with a
  // trailing CRC32 and s3rver stored the framing as part of the object, with no error anywhere.
  // A Buffer body is sent plainly either way, so this streams through the shared client settings.
  it('a streamed upload through createS3Client is stored byte for byte (checksum corruption)', async () => {
    await store.init();
    const client = createS3Client(config);
    const body = randomBytes(1024 * 1024);
    const key = `streamed/${uniquePrefix()}`;
    try {
      await client.send(
        new PutObjectCommand({
          Bucket: config.bucket,
          Key: key,
          Body: Readable.from([body]),
          ContentLength: body.length,
        }),
      );
      expect((await store.get(key)).equals(body)).toBe(true);
      await store.delete(key);
    } finally {
      client.destroy();
    }
  });

  it('get of a missing key throws ObjectNotFoundError', async () => {
    await store.init();
    const key = `images/sha256/00/${uniquePrefix()}`;
    const error = await store.get(key).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ObjectNotFoundError);
    expect((error as ObjectNotFoundError).key).toBe(key);
  });

  it('writtenAt: undefined for a missing key, the last write (whole seconds) for a stored one', async () => {
    await store.init();
    const body = randomBytes(64);
    const key = imageKey(body);
    expect(await store.writtenAt(key)).toBeUndefined();
    const before = Math.floor(Date.now() / 1000) * 1000;
    await store.put(key, body, 'image/png');
    const written = await store.writtenAt(key);
    expect(written).toBeGreaterThanOrEqual(before);
    expect(written).toBeLessThanOrEqual(Date.now());
    await store.delete(key);
    expect(await store.writtenAt(key)).toBeUndefined();
  });

  it('delete removes the object, and deleting again is not an error', async () => {
    await store.init();
    const body = randomBytes(64);
    const key = imageKey(body);
    await store.put(key, body, 'image/png');
    await store.delete(key);
    await expect(store.get(key)).rejects.toBeInstanceOf(ObjectNotFoundError);
    await store.delete(key);
  });

  it('ping answers once the bucket exists', async () => {
    await store.init();
    await expect(store.ping()).resolves.toBeUndefined();
  });

  it('expire sets a lifecycle rule where the server takes one, and says so where it does not', async () => {
    await store.init();
    const answer = await store.expire('images/', 2);
    // MinIO (containers) applies lifecycle rules; s3rver (the local stand-in) has none.
    expect(answer).toBe(services.runtime === 'containers' ? 'lifecycle' : 'unsupported');
  });

  it('get from a bucket that does not exist is an outage, not a missing image', async () => {
    const elsewhere = new S3ObjectStore({ ...config, bucket: uniquePrefix() });
    try {
      await expect(elsewhere.get('images/sha256/00/00')).rejects.toBeInstanceOf(
        StorageUnavailableError,
      );
    } finally {
      await elsewhere.close();
    }
  });
});

describe('S3ObjectStore when S3 is down', () => {
  const s3Down = (endpoint: string) =>
    new S3ObjectStore({
      kind: 's3',
      endpoint,
      bucket: 'unreachable',
      region: 'us-east-1',
      accessKeyId: 'key',
      secretAccessKey: 'secret',
      timeoutMs: TIMEOUT_MS,
    });

  async function timed(call: () => Promise<unknown>): Promise<{ error: unknown; ms: number }> {
    const started = performance.now();
    const error = await call().then(
      () => undefined,
      (e: unknown) => e,
    );
    return { error, ms: performance.now() - started };
  }

  it('rejects quickly with StorageUnavailableError when nothing listens on the port', async () => {
    const closed = net.createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const { port } = closed.address() as net.AddressInfo;
    await new Promise<void>((resolve) => closed.close(() => resolve()));

    const store = s3Down(`http://127.0.0.1:${port}`);
    try {
      for (const call of [
        () => store.get('images/sha256/00/00'),
        () => store.put('images/sha256/00/00', randomBytes(1024), 'image/png'),
        () => store.writtenAt('images/sha256/00/00'),
        () => store.ping(),
      ]) {
        const { error, ms } = await timed(call);
        console.info(`S3 down (connection refused): rejected after ${ms.toFixed(0)} ms`);
        expect(error).toBeInstanceOf(StorageUnavailableError);
        expect((error as Error).message).toMatch(/refused|ECONNREFUSED/i);
        expect((error as Error).message).not.toMatch(/\n\s+at /);
        expect(ms).toBeLessThan(BOUND_MS);
      }
    } finally {
      await store.close();
    }
  });

  it('rejects at the deadline with StorageUnavailableError when S3 accepts but never answers', async () => {
    const sockets = new Set<net.Socket>();
    const silent = net.createServer((socket) => {
      // Read and drop whatever arrives so that uploads are not held back by TCP back-pressure:
      // the test is about a server that never answers, not one that never reads.
      socket.resume();
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const { port } = silent.address() as net.AddressInfo;

    const store = s3Down(`http://127.0.0.1:${port}`);
    try {
      for (const call of [
        () => store.get('images/sha256/00/00'),
        () => store.put('images/sha256/00/00', randomBytes(256 * 1024), 'image/png'),
        () => store.writtenAt('images/sha256/00/00'),
        () => store.ping(),
      ]) {
        const { error, ms } = await timed(call);
        console.info(`S3 hangs (no answer): rejected after ${ms.toFixed(0)} ms`);
        expect(error).toBeInstanceOf(StorageUnavailableError);
        expect((error as Error).message).toContain(`within ${TIMEOUT_MS} ms`);
        expect(ms).toBeGreaterThanOrEqual(TIMEOUT_MS - 50);
        expect(ms).toBeLessThan(BOUND_MS);
      }
    } finally {
      await store.close();
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    }
  });
});

describe('LocalObjectStore', () => {
  let dir: string;
  let store: LocalObjectStore;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'ai-gateway-local-store-'));
    store = new LocalObjectStore({ dir: path.join(dir, 'objects') });
    await store.init();
  });

  afterAll(async () => {
    await store?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('expire sweeps files older than the retention under the prefix, and nothing else', async () => {
    const old = Buffer.from('old image');
    const fresh = Buffer.from('fresh image');
    await store.put(imageKey(old), old, 'image/png');
    await store.put(imageKey(fresh), fresh, 'image/png');
    await store.put('other/kept', old, 'application/octet-stream');
    const twoDaysAgo = new Date(Date.now() - 2 * 86_400_000 - 60_000);
    for (const key of [imageKey(old), 'other/kept']) {
      await utimes(path.join(dir, 'objects', ...key.split('/')), twoDaysAgo, twoDaysAgo);
    }

    expect(await store.expire('images/', 2)).toBe('sweep');
    expect(await store.writtenAt(imageKey(old))).toBeUndefined();
    expect(await store.writtenAt(imageKey(fresh))).toBeGreaterThan(Date.now() - 60_000);
    // File times are kept in finer or coarser units than milliseconds: within 5 ms.
    expect(await store.writtenAt('other/kept')).toBeCloseTo(twoDaysAgo.getTime(), -1);
  });

  it('round-trips a buffer, pings, and deletes', async () => {
    const body = randomBytes(300 * 1024);
    const key = imageKey(body);
    await store.put(key, body, 'image/jpeg');
    expect((await store.get(key)).equals(body)).toBe(true);
    await store.ping();
    await store.delete(key);
    await expect(store.get(key)).rejects.toBeInstanceOf(ObjectNotFoundError);
    await store.delete(key);
  });

  it('get of a missing key throws ObjectNotFoundError', async () => {
    await expect(store.get('images/sha256/ff/missing')).rejects.toBeInstanceOf(ObjectNotFoundError);
  });

  it.each([
    '../escape',
    'images/../../escape',
    'images/..',
    '/etc/passwd',
    'images\\..\\escape',
    'images/a\0b',
    '',
    'images//double',
    './images/x',
  ])('refuses the key %j', async (key) => {
    await expect(store.put(key, Buffer.from('x'), 'text/plain')).rejects.toBeInstanceOf(
      InvalidObjectKeyError,
    );
    await expect(store.get(key)).rejects.toBeInstanceOf(InvalidObjectKeyError);
    await expect(store.delete(key)).rejects.toBeInstanceOf(InvalidObjectKeyError);
  });

  it('concurrent puts of one key leave a complete file and no temporary files', async () => {
    const key = 'images/sha256/cc/concurrent';
    const bodies = Array.from({ length: 16 }, () => randomBytes(512 * 1024));
    // Readers run alongside the writers: each sees no file or one writer's complete bytes.
    const reads = Array.from({ length: 32 }, () =>
      store.get(key).then(
        (read) => read,
        (e: unknown) => {
          if (e instanceof ObjectNotFoundError) return undefined;
          throw e;
        },
      ),
    );
    await Promise.all(bodies.map((body) => store.put(key, body, 'application/octet-stream')));
    for (const read of await Promise.all(reads)) {
      if (read) expect(bodies.some((body) => body.equals(read))).toBe(true);
    }
    const final = await store.get(key);
    expect(bodies.some((body) => body.equals(final))).toBe(true);
    expect(await readdir(path.join(dir, 'objects', 'images', 'sha256', 'cc'))).toEqual([
      'concurrent',
    ]);
  });

  it('makes the folders a key needs, also when one was removed after an earlier put there', async () => {
    const first = Buffer.from('first');
    const second = Buffer.from('second');
    await store.put('made/on/demand/first', first, 'text/plain');
    await rm(path.join(dir, 'objects', 'made', 'on'), { recursive: true });

    await store.put('made/on/demand/second', second, 'text/plain');

    expect((await store.get('made/on/demand/second')).equals(second)).toBe(true);
    await expect(store.get('made/on/demand/first')).rejects.toBeInstanceOf(ObjectNotFoundError);
  });

  it('reports an unusable folder as StorageUnavailableError', async () => {
    // A regular file where the folder should be: mkdir and access both fail, as on a bad mount.
    const file = path.join(dir, 'not-a-folder');
    await new LocalObjectStore({ dir }).put('not-a-folder', Buffer.from('x'), 'text/plain');
    const broken = new LocalObjectStore({ dir: file });
    await expect(broken.init()).rejects.toBeInstanceOf(StorageUnavailableError);
    await expect(broken.put('a/b', Buffer.from('x'), 'text/plain')).rejects.toBeInstanceOf(
      StorageUnavailableError,
    );
  });
});

describe('imageKey', () => {
  it('is the same for the same bytes and different for different bytes', () => {
    const bytes = randomBytes(1000);
    expect(imageKey(bytes)).toBe(imageKey(Buffer.from(bytes)));
    expect(imageKey(bytes)).not.toBe(imageKey(randomBytes(1000)));
  });

  it('has the content-addressed layout', () => {
    const key = imageKey(Buffer.from('hello'));
    expect(key).toMatch(/^images\/sha256\/[0-9a-f]{2}\/[0-9a-f]{64}$/);
    const digest = key.split('/')[3] ?? '';
    expect(key.split('/')[2]).toBe(digest.slice(0, 2));
    expect(digest).toBe('2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824');
  });
});
