import { ApiKeyConfigError } from '../../shared/auth/keys-file.js';

/** What a quota caps, and over which calendar period (UTC). */
export type QuotaPolicy = 'images_per_day' | 'jobs_per_month';
export const QUOTA_POLICIES: readonly QuotaPolicy[] = ['images_per_day', 'jobs_per_month'];

/**
 * A key's limits (the keys file's `quota`), each optional: images accepted per UTC day, jobs
 * accepted per UTC month. Each accepted submission is one image and one job.
 */
export type KeyQuota = Partial<Record<QuotaPolicy, number>>;

/**
 * Reads an entry's `quota` (`{images_per_day, jobs_per_month}`, whole numbers >= 1, at least one);
 * absent: no quota. `where` names the entry for the error, never its key.
 */
export function parseKeyQuota(value: unknown, where: string): KeyQuota | undefined {
  if (value === undefined) return undefined;
  const refuse = () =>
    new ApiKeyConfigError(
      `${where}: quota needs one or both of ${QUOTA_POLICIES.join(', ')}, whole numbers >= 1`,
    );
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw refuse();
  const quota: KeyQuota = {};
  for (const [name, raw] of Object.entries(value)) {
    const limit = Number(raw);
    if (!QUOTA_POLICIES.includes(name as QuotaPolicy) || !Number.isInteger(limit) || limit < 1) {
      throw refuse();
    }
    quota[name as QuotaPolicy] = limit;
  }
  if (Object.keys(quota).length === 0) throw refuse();
  return quota;
}
