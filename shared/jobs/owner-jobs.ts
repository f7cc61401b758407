import type { RedisClient } from '../redis/redis.js';

export interface OwnerJobsOptions {
  /** Entries older than this go (the job retention: their records are gone too). */
  retentionSeconds: number;
  /**
   * Most entries kept per owner, newest first.
   * @defaultValue 100000
   */
  maxPerOwner?: number;
}

/** One page of an owner's jobs, newest first. */
export interface OwnerJobsPage {
  ids: string[];
  /** Where the next page starts; absent on the last page. */
  next?: string;
}

/** Creation time (ms, zero-padded to sort as text) and job id: `000001764177874172:<uuid>`. */
const MEMBER = /^(\d{15}):([\w-]{1,64})$/;
const pad = (ms: number) => String(Math.max(0, Math.floor(ms))).padStart(15, '0');

/** One owner's index entry for a new job, written by the job record's creation script. */
export interface OwnerJobsEntry {
  key: string;
  member: string;
  /** Entries below this member are past the retention; absent: not trimmed this time. */
  trimBelow?: string;
  /** Entries kept, newest first; absent: not trimmed this time. */
  keep?: number;
  /** The set's expiry, renewed; absent: renewed by this process a moment ago, not this time. */
  ttlSeconds?: number;
}

/**
 * How often an addition also trims the set (1 in N): entries past the retention, and the oldest
 * past `maxPerOwner`. Reads skip entries past the retention anyway, so the trims only bound the
 * memory an owner's set takes, at a fraction of a command per job: between two trims a process adds
 * at most N - 1 entries, so a set holds at most `maxPerOwner` + N - 1 per API process.
 */
const TRIM_EVERY = 16;

/** Owners whose expiry renewal a process remembers; past this many it starts over. */
const RENEWALS_REMEMBERED = 10_000;

/**
 * Each owner's jobs for GET /jobs: a sorted set per owner (`<prefix>:owner-jobs:<owner>`) whose
 * members all score 0 and so sort by their text, creation time first. Pages are read with
 * ZREVRANGEBYLEX from an exclusive bound, the last member of the page before: exact and stable
 * while jobs are added, with no offset to drift, and never past the retention. One addition in
 * {@link TRIM_EVERY} drops the entries past the retention and caps the set at `maxPerOwner`, newest
 * kept. The set's expiry is the retention plus a renewal interval (a tenth of the retention, at most a
 * minute), renewed by an addition when this process has not renewed it within that interval: an
 * owner who stops submitting leaves nothing behind, and a busy one costs no EXPIRE per job.
 */
export class OwnerJobs {
  private readonly maxPerOwner: number;
  private additions = 0;
  private readonly renewalMs: number;
  /** When this process last renewed each owner's expiry. */
  private readonly renewed = new Map<string, number>();

  constructor(
    private readonly redis: RedisClient,
    private readonly prefix: string,
    private readonly options: OwnerJobsOptions,
  ) {
    this.maxPerOwner = options.maxPerOwner ?? 100_000;
    if (this.maxPerOwner < 1 || options.retentionSeconds < 1) {
      throw new RangeError('maxPerOwner and retentionSeconds must be at least 1');
    }
    this.renewalMs = 1000 * Math.max(1, Math.min(60, Math.floor(options.retentionSeconds / 10)));
  }

  key(owner: string): string {
    return `${this.prefix}:owner-jobs:${owner}`;
  }

  /** The entry that adds job `id` (created at `createdAt`) to the owner's index. */
  entry(owner: string, id: string, createdAt: number, now = Date.now()): OwnerJobsEntry {
    const trim = this.additions++ % TRIM_EVERY === 0;
    return {
      key: this.key(owner),
      member: `${pad(createdAt)}:${id}`,
      trimBelow: trim ? pad(this.cutoff(createdAt)) : undefined,
      keep: trim ? this.maxPerOwner : undefined,
      ttlSeconds: this.renewsExpiry(owner, now)
        ? this.options.retentionSeconds + this.renewalMs / 1000
        : undefined,
    };
  }

  private renewsExpiry(owner: string, now: number): boolean {
    const last = this.renewed.get(owner);
    if (last !== undefined && now - last < this.renewalMs) return false;
    if (this.renewed.size >= RENEWALS_REMEMBERED) this.renewed.clear();
    this.renewed.set(owner, now);
    return true;
  }

  private cutoff(now: number): number {
    return now - this.options.retentionSeconds * 1000;
  }

  /**
   * Up to `limit` job ids, newest first, after the cursor `after` (from the page before). A cursor
   * that is not one of ours is refused with a RangeError.
   */
  async page(
    owner: string,
    limit: number,
    after?: string,
    now = Date.now(),
  ): Promise<OwnerJobsPage> {
    const from = after === undefined ? '+' : `(${decodeCursor(after)}`;
    const members = await this.redis.zrevrangebylex(
      this.key(owner),
      from,
      // Newest first, so the entries past the retention are the ones this bound leaves out.
      `[${pad(this.cutoff(now))}`,
      'LIMIT',
      0,
      limit + 1,
    );
    const page = members.slice(0, limit);
    const ids = page.map((member) => MEMBER.exec(member)?.[2] ?? '').filter(Boolean);
    const last = page.at(-1);
    return members.length > limit && last ? { ids, next: encodeCursor(last) } : { ids };
  }
}

function encodeCursor(member: string): string {
  return Buffer.from(member, 'utf8').toString('base64url');
}

function decodeCursor(cursor: string): string {
  const member = Buffer.from(cursor, 'base64url').toString('utf8');
  if (!MEMBER.test(member)) throw new RangeError('not a cursor from a page of GET /jobs');
  return member;
}
