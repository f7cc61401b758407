import { createHash } from 'node:crypto';
import type { RedisClient } from '../../shared/redis/redis.js';
import { defineCommands } from '../../shared/redis/redis-commands.js';
import { API_COMMANDS } from '../redis/api-commands.js';

/** What a claim on an idempotency key found. */
export type IdempotencyClaim =
  /** The key is ours: create the job, then {@link IdempotencyKeys.commit} (or release on failure). */
  | { kind: 'claimed' }
  /** The key belongs to a job: the same request again if the fingerprints match. */
  | { kind: 'taken'; jobId: string; fingerprint: string; committed: boolean };

/** How often a claim's last step is tried again while Redis is away. */
const RETRY_MS = 250;

export interface IdempotencyKeysOptions {
  /** How long a committed key maps to its job (the job retention). */
  retentionSeconds: number;
  /**
   * How long a claim may stay uncommitted before the key is free again.
   * @defaultValue 60000
   */
  pendingLeaseMs?: number;
}

/**
 * Idempotency keys (`Idempotency-Key` header) mapped to job ids in Redis, one hash per owner and
 * key: `<prefix>:idempotency:<owner>:<sha256 of key>`. A claim is one atomic HSETNX
 * (`idempotency-claim-1.lua`), so of concurrent requests with one key exactly one creates the job;
 * the others find it taken and compare request fingerprints. A claimed key starts with a short
 * lease, committed (or released) once the job exists (or could not be created).
 */
export class IdempotencyKeys {
  private readonly pendingLeaseMs: number;

  constructor(
    private readonly redis: RedisClient,
    private readonly prefix: string,
    private readonly options: IdempotencyKeysOptions,
  ) {
    this.pendingLeaseMs = options.pendingLeaseMs ?? 60_000;
    if (this.pendingLeaseMs <= 0 || options.retentionSeconds <= 0) {
      throw new RangeError('lease and retention must be positive');
    }
    defineCommands(redis, API_COMMANDS);
  }

  private key(owner: string, idempotencyKey: string): string {
    const digest = createHash('sha256').update(idempotencyKey).digest('hex');
    return `${this.prefix}:idempotency:${owner}:${digest}`;
  }

  async claim(
    owner: string,
    idempotencyKey: string,
    jobId: string,
    fingerprint: string,
  ): Promise<IdempotencyClaim> {
    const reply = await this.redis.idempotencyClaim(
      this.key(owner, idempotencyKey),
      jobId,
      fingerprint,
      this.pendingLeaseMs,
    );
    if (reply[0] === 'claimed') return { kind: 'claimed' };
    return {
      kind: 'taken',
      jobId: reply[1] ?? '',
      fingerprint: reply[2] ?? '',
      committed: reply[3] === 'committed',
    };
  }

  /** The job exists: the key now maps to it for the retention. */
  async commit(owner: string, idempotencyKey: string, jobId: string): Promise<boolean> {
    return this.land(() =>
      this.redis.idempotencyCommit(
        this.key(owner, idempotencyKey),
        jobId,
        this.options.retentionSeconds,
      ),
    );
  }

  /** The job could not be created: the key is free for a retry. */
  async release(owner: string, idempotencyKey: string, jobId: string): Promise<boolean> {
    return this.land(() => this.redis.idempotencyRelease(this.key(owner, idempotencyKey), jobId));
  }

  /**
   * Runs a claim's last step. When it fails (Redis away, the likely reason a job could not be
   * created), it is tried again in the background until it lands or the claim's lease has run out:
   * a released key is free again as soon as Redis is back, not only after the lease, and a committed
   * one does not lapse into a second job. Answers whether the first try landed.
   */
  private async land(step: () => Promise<unknown>): Promise<boolean> {
    const until = Date.now() + this.pendingLeaseMs;
    try {
      await step();
      return true;
    } catch {
      const retry = () => {
        if (Date.now() >= until) return;
        step().catch(() => setTimeout(retry, RETRY_MS).unref());
      };
      setTimeout(retry, RETRY_MS).unref();
      return false;
    }
  }
}
