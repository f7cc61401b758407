import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { Readable } from 'node:stream';
import {
  CreateBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  PutBucketLifecycleConfigurationCommand,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import type { StorageConfig } from '../config/config.js';
import { ObjectNotFoundError, type ObjectStore, StorageUnavailableError } from './object-store.js';

export type S3StorageConfig = Extract<StorageConfig, { kind: 's3' }>;

export interface S3ObjectStoreOptions {
  /**
   * A client built elsewhere (tests). The store uses it as it is, so its checksum, timeout and
   * retry settings are the caller's business (build it with {@link createS3Client} to keep ours),
   * `maxAttempts` is ignored, and {@link S3ObjectStore.close} still destroys it. The per-call
   * deadline of `timeoutMs` applies either way.
   */
  client?: S3Client;
  /**
   * Attempts per call, first one included. Kept low because the whole call must also fit in
   * `timeoutMs`; the queue retries the job with backoff when S3 stays away.
   * @defaultValue 2
   */
  maxAttempts?: number;
}

/**
 * The S3 client settings every S3 user in this code base needs (the object store, and anything
 * that later streams from a bucket): path-style addressing, checksums only when required, bounded
 * connect and request times, keep-alive, few retries.
 */
export function createS3Client(config: S3StorageConfig, maxAttempts = 2): S3Client {
  return new S3Client({
    endpoint: config.endpoint,
    region: config.region,
    credentials: {
      accessKeyId: config.accessKeyId,
      secretAccessKey: config.secretAccessKey,
    },
    // MinIO and s3rver serve buckets as paths, not as virtual hosts.
    forcePathStyle: true,
    // The SDK's default checksums send streamed bodies as aws-chunked with a trailing CRC32, which
    // s3rver stores verbatim (framing included) without any error: only compute or check them
    // when an operation demands it.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    maxAttempts,
    requestHandler: new NodeHttpHandler({
      connectionTimeout: config.timeoutMs,
      requestTimeout: config.timeoutMs,
      // Without this the handler only logs a warning when requestTimeout passes.
      throwOnRequestTimeout: true,
      httpAgent: new HttpAgent({ keepAlive: true, maxSockets: 64 }),
      httpsAgent: new HttpsAgent({ keepAlive: true, maxSockets: 64 }),
    }),
  });
}

/**
 * Lets one operation give an S3 answer its own meaning (a 404 on GetObject is "no such image", on
 * HeadBucket "create it"): return a result, throw a domain error, or return undefined to treat the
 * answer as an outage like any other.
 */
type Expected<T> = (error: S3ServiceException) => T | undefined;

/**
 * {@link ObjectStore} over the S3 protocol (MinIO in production, s3rver in tests). Every call has
 * one overall deadline of `timeoutMs`, retries included, so S3 being down or hanging turns into a
 * {@link StorageUnavailableError} instead of a caller that waits forever.
 */
export class S3ObjectStore implements ObjectStore {
  readonly kind = 's3' as const;
  readonly bucket: string;
  private readonly client: S3Client;
  private readonly endpoint: string;
  private readonly timeoutMs: number;
  private closed = false;

  constructor(config: S3StorageConfig, options: S3ObjectStoreOptions = {}) {
    const { maxAttempts = 2 } = options;
    if (!config.bucket) throw new Error('S3ObjectStore: bucket must not be empty');
    if (!Number.isFinite(config.timeoutMs) || config.timeoutMs <= 0) {
      throw new Error(
        `S3ObjectStore: timeoutMs must be a positive number, got ${config.timeoutMs}`,
      );
    }
    if (!Number.isInteger(maxAttempts) || maxAttempts < 1) {
      throw new Error(`S3ObjectStore: maxAttempts must be an integer >= 1, got ${maxAttempts}`);
    }
    this.bucket = config.bucket;
    this.endpoint = config.endpoint;
    this.timeoutMs = config.timeoutMs;
    this.client = options.client ?? createS3Client(config, maxAttempts);
  }

  async init(): Promise<void> {
    if (await this.bucketExists('init')) return;
    try {
      await this.call('CreateBucket', '', undefined, (signal) =>
        this.client.send(new CreateBucketCommand({ Bucket: this.bucket }), {
          abortSignal: signal,
        }),
      );
    } catch (error) {
      // Another process may have created it between our HeadBucket and CreateBucket (MinIO says
      // BucketAlreadyOwnedByYou, s3rver BucketAlreadyExists): asking again settles it either way.
      if (error instanceof StorageUnavailableError && (await this.bucketExists('init'))) return;
      throw error;
    }
  }

  async put(key: string, body: Buffer, contentType: string): Promise<void> {
    await this.call('PutObject', key, undefined, (signal) =>
      this.client.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: key,
          Body: body,
          ContentType: contentType,
          ContentLength: body.length,
        }),
        { abortSignal: signal },
      ),
    );
  }

  async writtenAt(key: string): Promise<number | undefined> {
    // The miss is a value, not a failure: `null` here, undefined to the caller.
    const missing: Expected<number | null> = (error) =>
      error.name !== 'NoSuchBucket' && error.$metadata.httpStatusCode === 404 ? null : undefined;
    const written = await this.call<number | null>('HeadObject', key, missing, async (signal) => {
      const head = await this.client.send(
        new HeadObjectCommand({ Bucket: this.bucket, Key: key }),
        { abortSignal: signal },
      );
      // Every S3 server sends Last-Modified; without it the object counts as just written.
      return head.LastModified?.getTime() ?? Date.now();
    });
    return written ?? undefined;
  }

  async get(key: string): Promise<Buffer> {
    return this.call('GetObject', key, this.missingKey(key), async (signal) => {
      const out = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }), {
        abortSignal: signal,
      });
      const body = out.Body;
      if (!body) return Buffer.alloc(0);
      // The deadline covers reading the body too: a server that sends headers and then stalls
      // must not keep the socket (or the caller) forever.
      const onAbort = () => {
        if (body instanceof Readable) body.destroy(signal.reason as Error);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      try {
        const bytes = await body.transformToByteArray();
        return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      } finally {
        signal.removeEventListener('abort', onAbort);
      }
    });
  }

  async delete(key: string): Promise<void> {
    // S3 answers 204 for a key that is already gone, so a repeated delete is not an error.
    await this.call('DeleteObject', key, undefined, (signal) =>
      this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }), {
        abortSignal: signal,
      }),
    );
  }

  async expire(prefix: string, days: number): Promise<'lifecycle' | 'unsupported'> {
    try {
      await this.call('PutBucketLifecycleConfiguration', '', undefined, (signal) =>
        this.client.send(
          new PutBucketLifecycleConfigurationCommand({
            Bucket: this.bucket,
            LifecycleConfiguration: {
              Rules: [
                {
                  ID: `ai-gateway-expire-${prefix.replace(/[^\w-]/g, '-')}`,
                  Status: 'Enabled',
                  Filter: { Prefix: prefix },
                  Expiration: { Days: days },
                },
              ],
            },
          }),
          { abortSignal: signal },
        ),
      );
      return 'lifecycle';
    } catch (err) {
      // Servers without lifecycle support (s3rver, some gateways) answer 501 or 405: the caller
      // says so; an outage is an outage.
      const status = ((err as Error).cause as S3ServiceException | undefined)?.$metadata
        ?.httpStatusCode;
      if (status === 501 || status === 405 || status === 400) return 'unsupported';
      throw err;
    }
  }

  async ping(): Promise<void> {
    if (!(await this.bucketExists('ping'))) {
      throw new StorageUnavailableError(
        `S3 bucket ${this.bucket} does not exist at ${this.endpoint}`,
        { reason: 'the bucket does not exist' },
      );
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.client.destroy();
  }

  private async bucketExists(purpose: string): Promise<boolean> {
    // HeadBucket has no response body, so the SDK can only name a missing bucket from the status.
    const missingBucket: Expected<boolean> = (error) =>
      error.$metadata.httpStatusCode === 404 ? false : undefined;
    return this.call(`HeadBucket (${purpose})`, '', missingBucket, async (signal) => {
      await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }), {
        abortSignal: signal,
      });
      return true;
    });
  }

  /**
   * A missing bucket under GetObject is a misconfiguration or an outage that a retry may cure,
   * never "this image does not exist", so only NoSuchKey becomes {@link ObjectNotFoundError}.
   */
  private missingKey(key: string): Expected<never> {
    return (error) => {
      if (error.name === 'NoSuchBucket') return undefined;
      if (error.name === 'NoSuchKey' || error.$metadata.httpStatusCode === 404) {
        throw new ObjectNotFoundError(key);
      }
      return undefined;
    };
  }

  /**
   * Runs one S3 operation under the overall deadline and turns every failure into one of the two
   * errors of {@link ObjectStore}. The SDK is given the signal so it stops the socket; the race
   * guarantees the caller is released at the deadline even while the SDK sleeps between retries.
   */
  private async call<T>(
    operation: string,
    key: string,
    expected: Expected<T> | undefined,
    run: (signal: AbortSignal) => Promise<T>,
  ): Promise<T> {
    const target = key ? `${this.bucket}/${key}` : this.bucket;
    if (this.closed) {
      throw new StorageUnavailableError(`S3 ${operation} ${target}: the store is closed`, {
        reason: 'the store is closed',
      });
    }
    const signal = AbortSignal.timeout(this.timeoutMs);
    let onAbort: (() => void) | undefined;
    const deadline = new Promise<never>((_, reject) => {
      onAbort = () => reject(signal.reason);
      signal.addEventListener('abort', onAbort, { once: true });
    });
    try {
      return await Promise.race([run(signal), deadline]);
    } catch (error) {
      if (expected && error instanceof S3ServiceException && !signal.aborted) {
        const value = expected(error);
        if (value !== undefined) return value;
      }
      throw new StorageUnavailableError(
        `S3 ${operation} ${target} at ${this.endpoint} failed: ${this.describe(error, signal)}`,
        { cause: error, reason: this.shortReason(error, signal) },
      );
    } finally {
      if (onAbort) signal.removeEventListener('abort', onAbort);
    }
  }

  /** The kind of failure without names or addresses, for clients (StorageUnavailableError.reason). */
  private shortReason(error: unknown, signal: AbortSignal): string {
    if (signal.aborted || (error as Error | undefined)?.name === 'TimeoutError') {
      return `no answer within ${this.timeoutMs} ms`;
    }
    if (error instanceof S3ServiceException) {
      return `the storage service answered HTTP ${error.$metadata.httpStatusCode ?? 'error'}`;
    }
    const code = (error as NodeJS.ErrnoException | undefined)?.code;
    if (code === 'ECONNREFUSED') return 'connection refused';
    return code ? `network error (${code})` : 'the storage service failed';
  }

  private describe(error: unknown, signal: AbortSignal): string {
    if (signal.aborted) return `no answer within ${this.timeoutMs} ms`;
    if (error instanceof S3ServiceException) {
      const status = error.$metadata.httpStatusCode;
      return `${status ? `HTTP ${status} ` : ''}${error.name}: ${error.message}`;
    }
    if (error instanceof Error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ECONNREFUSED') return 'connection refused (ECONNREFUSED)';
      if (error.name === 'TimeoutError') return `no answer within ${this.timeoutMs} ms`;
      return code ? `${error.message} (${code})` : error.message || error.name;
    }
    return String(error);
  }
}
