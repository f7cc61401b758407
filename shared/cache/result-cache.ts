import { createHash } from 'node:crypto';
import type { Prediction } from '../jobs/inference-result.js';
import type { InferenceParams } from '../jobs/job-spec.js';
import type { BackendKind } from '../models/model-spec.js';
import type { RedisClient } from '../redis/redis.js';

/**
 * What the cache did for one request: answered it (`hit`), found nothing (`miss`), or was told not
 * to look (`bypass`: `Cache-Control: no-cache`). A miss and a bypass both run the model and
 * remember its answer.
 */
export const RESULT_CACHE_OUTCOMES = ['hit', 'miss', 'bypass'] as const;
export type ResultCacheOutcome = (typeof RESULT_CACHE_OUTCOMES)[number];

/** Whose results a request may be answered from (RESULT_CACHE_SCOPE). */
export type ResultCacheScope = 'owner' | 'global';

/**
 * What a job carries so that its worker can remember its result: decided by the API, which alone
 * reads the cache settings, so a worker never needs them.
 */
export interface ResultCacheTerms {
  /** `owner:<id>`, or `global`: who may be answered from this result. */
  scope: string;
  /** The model's registry fingerprint as the API knows it (see modelFingerprint). */
  definition: string;
  ttlSeconds: number;
}

/** Everything that decides an answer; two requests with the same address get the same one. */
export interface ResultAddress {
  scope: string;
  model: string;
  definition: string;
  backend: BackendKind;
  /** The version that serves (or served) the request: never "newest", always a number. */
  version: string;
  /** The image's content address (imageKey: its SHA-256). */
  image: string;
  params: InferenceParams;
}

/** A remembered answer. */
export interface CachedResult {
  version: string;
  backend: string;
  result: Prediction;
  /** The job that computed it, and when (epoch ms): for logs and for whoever inspects Redis. */
  jobId: string;
  computedAt: number;
}

/** The `scope` of terms and addresses for an owner under a scope setting. */
export function scopeOf(scope: ResultCacheScope, owner: string): string {
  return scope === 'global' ? 'global' : `owner:${owner}`;
}

/** One entry as Redis holds it. */
export interface CacheEntry {
  key: string;
  value: string;
  ttlSeconds: number;
}

/**
 * Finished results in Redis, one string per address, `<prefix>:result:<model>:<sha256>`, expiring
 * after the TTL the job was given. The digest covers the whole address, so the owner's id is not
 * readable in the key; the model stays readable so an operator can drop one model's entries.
 * Entries are never invalidated in place: a new version or a registry change gives new addresses,
 * and the old entries expire unread.
 */
export class ResultCache {
  constructor(
    private readonly redis: RedisClient,
    private readonly prefix: string,
  ) {}

  key(address: ResultAddress): string {
    const digest = createHash('sha256')
      .update(
        JSON.stringify([
          address.scope,
          address.model,
          address.definition,
          address.backend,
          address.version,
          address.image,
          address.params.topK ?? null,
          address.params.threshold ?? null,
        ]),
      )
      .digest('hex');
    return `${this.prefix}:result:${address.model}:${digest}`;
  }

  async get(address: ResultAddress): Promise<CachedResult | undefined> {
    const json = await this.redis.get(this.key(address));
    return json === null ? undefined : (JSON.parse(json) as CachedResult);
  }

  async put(address: ResultAddress, entry: CachedResult, ttlSeconds: number): Promise<void> {
    const { key, value } = this.entry(address, entry, ttlSeconds);
    if (ttlSeconds <= 0) return;
    await this.redis.set(key, value, 'EX', ttlSeconds);
  }

  /**
   * What {@link put} writes, for a caller that writes it in a step of its own (the worker's settle
   * script): the key, the value and its TTL (0 or less: not to be written).
   */
  entry(address: ResultAddress, entry: CachedResult, ttlSeconds: number): CacheEntry {
    return { key: this.key(address), value: JSON.stringify(entry), ttlSeconds };
  }
}
