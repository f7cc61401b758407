import { createHash, timingSafeEqual } from 'node:crypto';
import { ApiKeyConfigError, readKeysDocument } from '../../shared/auth/keys-file.js';
import { ANONYMOUS_OWNER } from '../../shared/jobs/job-records.js';
import { type KeyQuota, parseKeyQuota } from '../quotas/key-quota.js';
import { isReservedTenantId, TENANT_ID } from './tenant-id.js';

export { ApiKeyConfigError };

/** A client's own request budget, overriding the global rate limit. */
export interface KeyRateLimit {
  requests: number;
  windowSeconds: number;
}

/** One API key as the service keeps it: an id (the tenant) and the key's SHA-256, never the key. */
export interface ApiKey {
  id: string;
  sha256: Buffer;
  rateLimit?: KeyRateLimit;
  /** Images per day and jobs per month (the keys file's `quota`); absent: no quota. */
  quota?: KeyQuota;
  /** Its async jobs' share of the workers against other busy keys' (fair scheduling). */
  weight?: number;
}

/** The range of a key's `weight`: whole numbers, so a share is a plain ratio. */
export const WEIGHT = { min: 1, max: 1000, default: 1 } as const;

const MIN_KEY_LENGTH = 16;

const sha256 = (value: string) => createHash('sha256').update(value, 'utf8').digest();

/**
 * The API keys this deployment accepts. Keys are hashed on load and compared in constant time
 * against every known key (no early exit), so neither the keys nor which one nearly matched leak
 * through timing or logs.
 */
export class ApiKeyRing {
  private readonly keys: readonly ApiKey[];

  constructor(keys: readonly ApiKey[]) {
    const ids = new Set<string>();
    for (const key of keys) {
      if (!TENANT_ID.test(key.id))
        throw new ApiKeyConfigError(`API key id "${key.id}" is not valid`);
      // Ids name tenants and, in DELETE /admin/rate-limits/{client}, clients beside IP addresses.
      if (isReservedTenantId(key.id)) {
        throw new ApiKeyConfigError(
          `API key id "${key.id}" is reserved (not "${ANONYMOUS_OWNER}", not an IP address)`,
        );
      }
      if (ids.has(key.id)) throw new ApiKeyConfigError(`API key id "${key.id}" appears twice`);
      ids.add(key.id);
    }
    this.keys = keys;
  }

  /** No keys configured: the service runs open (local use only). */
  get open(): boolean {
    return this.keys.length === 0;
  }

  get size(): number {
    return this.keys.length;
  }

  /** Whether a key with this id is configured. */
  has(id: string): boolean {
    return this.keys.some((key) => key.id === id);
  }

  /** The key with this id, if one is configured. */
  byId(id: string): ApiKey | undefined {
    return this.keys.find((key) => key.id === id);
  }

  /** The weight of a key's async jobs in fair scheduling; any other owner has the default. */
  weightOf(id: string): number {
    return this.byId(id)?.weight ?? WEIGHT.default;
  }

  /** The key a client presented, if it is one of ours. */
  verify(presented: string): ApiKey | undefined {
    const digest = sha256(presented);
    let found: ApiKey | undefined;
    for (const key of this.keys) {
      if (timingSafeEqual(digest, key.sha256) && !found) found = key;
    }
    return found;
  }

  /**
   * `API_KEYS=id1:key1,id2:key2` (keys in the environment, hashed here) and/or a keys file
   * (`API_KEYS_FILE`, YAML or JSON: `keys: [{id, sha256 | key, rate_limit: {requests, window},
   * quota: {images_per_day, jobs_per_month}, weight}]`;
   * an entry's `webhook_secrets` are read by `shared/webhooks/signing-secrets.ts`).
   */
  static load(list: string | undefined, file: string | undefined): ApiKeyRing {
    return new ApiKeyRing([...parseKeyList(list ?? ''), ...(file ? readKeysFile(file) : [])]);
  }
}

export function parseKeyList(list: string): ApiKey[] {
  return list
    .split(',')
    .map((entry) => entry.trim())
    .filter(Boolean)
    .map((entry, i) => {
      const colon = entry.indexOf(':');
      // The position, never the entry: the entry holds a secret.
      if (colon <= 0) throw new ApiKeyConfigError(`API_KEYS entry ${i + 1} is not id:key`);
      const id = entry.slice(0, colon);
      const key = entry.slice(colon + 1);
      if (key.length < MIN_KEY_LENGTH) {
        throw new ApiKeyConfigError(
          `API_KEYS entry ${i + 1} (id "${id}"): the key must have at least ${MIN_KEY_LENGTH} characters`,
        );
      }
      return { id, sha256: sha256(key) };
    });
}

export function readKeysFile(path: string): ApiKey[] {
  return readKeysDocument(path).map((entry, i) => {
    const where = `API_KEYS_FILE ${path}: keys[${i}]`;
    if (typeof entry.id !== 'string') throw new ApiKeyConfigError(`${where}: "id" is required`);
    let digest: Buffer;
    if (typeof entry.sha256 === 'string' && /^[0-9a-f]{64}$/i.test(entry.sha256)) {
      digest = Buffer.from(entry.sha256, 'hex');
    } else if (typeof entry.key === 'string' && entry.key.length >= MIN_KEY_LENGTH) {
      digest = sha256(entry.key);
    } else {
      throw new ApiKeyConfigError(
        `${where} (id "${entry.id}"): give "sha256" (64 hex digits) or "key" (${MIN_KEY_LENGTH}+ characters)`,
      );
    }
    const limit = entry.rate_limit;
    let rateLimit: KeyRateLimit | undefined;
    if (limit !== undefined) {
      const requests = Number(limit.requests);
      const windowSeconds = Number(limit.window ?? 60);
      if (
        !Number.isInteger(requests) ||
        requests < 1 ||
        !Number.isInteger(windowSeconds) ||
        windowSeconds < 1
      ) {
        throw new ApiKeyConfigError(
          `${where} (id "${entry.id}"): rate_limit needs whole numbers requests >= 1 and window >= 1 (seconds)`,
        );
      }
      rateLimit = { requests, windowSeconds };
    }
    const quota = parseKeyQuota(entry.quota, `${where} (id "${entry.id}")`);
    const weight = entry.weight === undefined ? undefined : Number(entry.weight);
    if (
      weight !== undefined &&
      !(Number.isInteger(weight) && weight >= WEIGHT.min && weight <= WEIGHT.max)
    ) {
      throw new ApiKeyConfigError(
        `${where} (id "${entry.id}"): weight must be a whole number from ${WEIGHT.min} to ${WEIGHT.max}`,
      );
    }
    return {
      id: entry.id,
      sha256: digest,
      rateLimit,
      quota,
      weight,
    };
  });
}
