/**
 * Where uploaded images live between the API and the workers. Content-addressed: the key is
 * derived from the bytes, so the same image uploaded twice is stored once. Implementations: S3
 * (MinIO in production) and a local folder (the embedded default).
 */
export interface ObjectStore {
  readonly kind: 's3' | 'local';
  /** Creates the bucket or folder if it is missing. */
  init(): Promise<void>;
  put(key: string, body: Buffer, contentType: string): Promise<void>;
  /**
   * When the object under `key` was last written (ms since the epoch; S3 keeps whole seconds), or
   * undefined when there is none. A HEAD: no body is read.
   */
  writtenAt(key: string): Promise<number | undefined>;
  /** Throws {@link ObjectNotFoundError} when the key does not exist. */
  get(key: string): Promise<Buffer>;
  delete(key: string): Promise<void>;
  /**
   * Deletes objects under `prefix` once they are `days` old: an S3 lifecycle rule (the server does
   * it), or, for a folder, a sweep now and every hour until `close()`. Says which, or that the S3
   * server does not take lifecycle rules (then objects stay until removed by other means).
   */
  expire(prefix: string, days: number): Promise<'lifecycle' | 'sweep' | 'unsupported'>;
  /** A cheap round trip that proves the store answers. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

export class ObjectNotFoundError extends Error {
  override name = 'ObjectNotFoundError';
  constructor(readonly key: string) {
    super(`Object ${key} does not exist`);
  }
}

/** Any failure to reach or use the store (timeout, refused connection, 5xx). */
export class StorageUnavailableError extends Error {
  override name = 'StorageUnavailableError';
  /**
   * What went wrong, short and free of addresses, bucket and key names, for an answer to a client
   * ("no answer within 5000 ms", "connection refused"); `message` has the whole story for logs.
   */
  readonly reason: string;

  constructor(message: string, options: { cause?: unknown; reason?: string } = {}) {
    super(message, options.cause === undefined ? {} : { cause: options.cause });
    this.reason = options.reason ?? 'the storage service failed';
  }
}
