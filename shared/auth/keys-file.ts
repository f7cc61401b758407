import { readFileSync } from 'node:fs';
import { KeysSyntaxError, parseKeysDocument } from './keys-document.js';

/** A bad API key setting (API_KEYS or the keys file): start-up stops with it as a config error. */
export class ApiKeyConfigError extends Error {
  override name = 'ApiKeyConfigError';
}

/**
 * One entry of the keys file as written. The API reads the key fields (`api/auth/`); the webhooks
 * worker and the API both read `webhook_secrets` (`shared/webhooks/signing-secrets.ts`).
 */
export interface KeysFileEntry {
  id?: unknown;
  key?: unknown;
  sha256?: unknown;
  rate_limit?: { requests?: unknown; window?: unknown };
  /** `{images_per_day, jobs_per_month}`, read by the API (`api/quotas/key-quota.ts`). */
  quota?: unknown;
  /** The key's share of the workers against other busy keys' (fair scheduling); default 1. */
  weight?: unknown;
  webhook_secrets?: unknown;
}

/**
 * The entries of a keys file (API_KEYS_FILE, YAML or JSON: `keys: [...]`), unchecked beyond being a
 * list: each reader checks the fields it uses, naming the entry, never its value.
 */
export function readKeysDocument(path: string): KeysFileEntry[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ApiKeyConfigError(`API_KEYS_FILE ${path} cannot be read: ${(err as Error).message}`);
  }
  let document: { keys?: KeysFileEntry[] };
  try {
    document = (parseKeysDocument(path, text) as typeof document | null) ?? {};
  } catch (err) {
    if (!(err instanceof KeysSyntaxError)) throw err;
    throw new ApiKeyConfigError(`API_KEYS_FILE ${path} is ${err.message}`);
  }
  if (!Array.isArray(document.keys)) {
    throw new ApiKeyConfigError(`API_KEYS_FILE ${path}: expected a list under "keys"`);
  }
  return document.keys;
}
