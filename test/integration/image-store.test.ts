import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, utimes } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ImageStore } from '../../api/images/image-store.js';
import { imageKey, LocalObjectStore } from '../../shared/storage/index.js';

const DAY_MS = 86_400_000;

describe('ImageStore over a real folder store', () => {
  let dir: string;
  let store: LocalObjectStore;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'ai-gateway-uploads-'));
    store = new LocalObjectStore({ dir });
    await store.init();
  });

  afterAll(async () => {
    await store?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** Makes the stored copy of `key` look written `ageMs` ago; returns its time as stored. */
  async function age(key: string, ageMs: number): Promise<number | undefined> {
    const when = new Date(Date.now() - ageMs);
    await utimes(path.join(dir, ...key.split('/')), when, when);
    return store.writtenAt(key);
  }

  it('stores an image once: the same bytes again, at once or concurrently, write nothing', async () => {
    const images = new ImageStore(store, { rememberMs: 0, refreshAfterMs: DAY_MS });
    const bytes = randomBytes(2048);
    const key = await images.save(bytes, 'image/png');
    expect(key).toBe(imageKey(bytes));
    expect((await store.get(key)).equals(bytes)).toBe(true);

    const written = await age(key, 60_000);
    await Promise.all(Array.from({ length: 5 }, () => images.save(bytes, 'image/png')));
    expect(await store.writtenAt(key)).toBe(written);
  });

  it('rewrites a stored copy older than refreshAfterMs, so reusing it restarts its retention', async () => {
    const images = new ImageStore(store, { rememberMs: 0, refreshAfterMs: DAY_MS });
    const bytes = randomBytes(2048);
    const key = await images.save(bytes, 'image/png');

    // Younger than the refresh age: kept as it is.
    const young = await age(key, DAY_MS - 60_000);
    await images.save(bytes, 'image/png');
    expect(await store.writtenAt(key)).toBe(young);

    // Older: written again, with the same bytes, as of now.
    await age(key, DAY_MS + 60_000);
    const before = Date.now();
    await images.save(bytes, 'image/png');
    expect(await store.writtenAt(key)).toBeGreaterThanOrEqual(before - 1_000);
    expect((await store.get(key)).equals(bytes)).toBe(true);
  });

  it('a copy deleted behind its back is written again once the memory of it runs out', async () => {
    const images = new ImageStore(store, { rememberMs: 0, refreshAfterMs: DAY_MS });
    const bytes = randomBytes(2048);
    const key = await images.save(bytes, 'image/png');
    await store.delete(key);
    await images.save(bytes, 'image/png');
    expect((await store.get(key)).equals(bytes)).toBe(true);
  });

  it('refuses a memory that outlives the refresh age', () => {
    expect(() => new ImageStore(store, { rememberMs: 10_000, refreshAfterMs: 5_000 })).toThrow(
      RangeError,
    );
  });
});
