import { withCause } from '../../shared/errors/index.js';
import { imageKey, type ObjectStore, StorageUnavailableError } from '../../shared/storage/index.js';
import { errors } from '../http/errors.js';

export interface ImageStoreOptions {
  /**
   * How long a stored key is remembered, so a hot image is not even checked again.
   * @defaultValue 60000
   */
  rememberMs?: number;
  /** @defaultValue 10000 */
  maxRemembered?: number;
  /**
   * A stored copy older than this is written again, which restarts its retention (set it well
   * under IMAGE_RETENTION_DAYS). Without it, an image uploaded again just before its copy expires
   * could be deleted under the job that reused it. Absent: stored copies are never rewritten.
   */
  refreshAfterMs?: number;
}

/**
 * Stores uploads content-addressed, each distinct image once: a key already in storage is not
 * written again (until its copy is old enough to need refreshing), and concurrent uploads of one
 * image share one write. Rewriting an object while a worker reads it is not atomic on every S3
 * implementation, and it is wasted bandwidth anyway.
 */
export class ImageStore {
  private readonly inFlight = new Map<string, Promise<void>>();
  /** key -> when it was known to be stored; insertion order is age order. */
  private readonly remembered = new Map<string, number>();
  private readonly rememberMs: number;
  private readonly maxRemembered: number;
  private readonly refreshAfterMs: number;

  constructor(
    private readonly store: ObjectStore,
    options: ImageStoreOptions = {},
  ) {
    this.rememberMs = options.rememberMs ?? 60_000;
    this.maxRemembered = options.maxRemembered ?? 10_000;
    this.refreshAfterMs = options.refreshAfterMs ?? Number.POSITIVE_INFINITY;
    if (this.rememberMs < 0 || this.maxRemembered < 0 || this.refreshAfterMs < 0) {
      throw new RangeError('limits must be >= 0');
    }
    if (this.rememberMs >= this.refreshAfterMs) {
      throw new RangeError('rememberMs must be shorter than refreshAfterMs');
    }
  }

  /**
   * Returns the image's key once the image is in storage; STORAGE_UNAVAILABLE otherwise. `key`
   * saves hashing the bytes again when the caller has it.
   */
  async save(bytes: Buffer, contentType: string, key = imageKey(bytes)): Promise<string> {
    const storedAt = this.remembered.get(key);
    if (storedAt !== undefined && Date.now() - storedAt < this.rememberMs) return key;

    let write = this.inFlight.get(key);
    if (!write) {
      write = this.write(key, bytes, contentType).finally(() => this.inFlight.delete(key));
      this.inFlight.set(key, write);
    }
    await write;
    return key;
  }

  private async write(key: string, bytes: Buffer, contentType: string): Promise<void> {
    try {
      const writtenAt = await this.store.writtenAt(key);
      if (writtenAt === undefined || Date.now() - writtenAt >= this.refreshAfterMs) {
        await this.store.put(key, bytes, contentType);
      }
    } catch (err) {
      if (err instanceof StorageUnavailableError) {
        throw withCause(new errors.STORAGE_UNAVAILABLE(err.reason), err);
      }
      throw err;
    }
    this.remembered.delete(key);
    this.remembered.set(key, Date.now());
    if (this.remembered.size > this.maxRemembered) {
      this.remembered.delete(this.remembered.keys().next().value!);
    }
  }
}
