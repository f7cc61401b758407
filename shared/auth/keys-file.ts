import { readFileSync } from 'node:fs';
import { extname } from 'node:path';
import { parse as parseYaml } from 'yaml';

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
  webhook_secrets?: unknown;
}

/**
 * The entries of a keys file (API_KEYS_FILE, YAML or JSON: `keys: [...]`), unchecked beyond being a
 * list: each reader checks the fields it uses, naming the entry, never its value.
 */
export function readKeysDocument(path: string): KeysFileEntry[] {
  let document: { keys?: KeysFileEntry[] };
  try {
    const text = readFileSync(path, 'utf8');
    // YAML's failsafe schema reads every scalar as text: a digest or key made of digits stays a
    // string instead of turning into a number.
    document =
      (extname(path) === '.json' ? JSON.parse(text) : parseYaml(text, { schema: 'failsafe' })) ??
      {};
  } catch (err) {
    throw new ApiKeyConfigError(`API_KEYS_FILE ${path} cannot be read: ${(err as Error).message}`);
  }
  if (!Array.isArray(document.keys)) {
    throw new ApiKeyConfigError(`API_KEYS_FILE ${path}: expected a list under "keys"`);
  }
  return document.keys;
}
