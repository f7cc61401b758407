import { createHash } from 'node:crypto';

/**
 * The storage key of an uploaded image, derived from its bytes: `images/sha256/<2 hex>/<64 hex>`.
 * The same image uploaded twice lands on the same key, so it is stored once and a result cache
 * can later be keyed by it too. The two-character folder keeps a local folder from growing one
 * directory with millions of entries.
 */
export function imageKey(bytes: Buffer): string {
  const digest = createHash('sha256').update(bytes).digest('hex');
  return `${IMAGE_PREFIX}sha256/${digest.slice(0, 2)}/${digest}`;
}

/** Where every uploaded image lives, and what expires after IMAGE_RETENTION_DAYS. */
export const IMAGE_PREFIX = 'images/';
