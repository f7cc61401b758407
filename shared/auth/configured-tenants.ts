import type { Config } from '../config/config.js';
import { readKeysDocument } from './keys-file.js';

/**
 * The ids of the configured API keys (API_KEYS and the keys file), for processes that label
 * metrics by tenant without checking keys (workers): the API checks the keys themselves at
 * start-up, and refuses a bad entry.
 */
export function configuredTenantIds(auth: Config['auth']): string[] {
  const listed = (auth.apiKeys ?? '')
    .split(',')
    .map((entry) => entry.trim().split(':', 1)[0] ?? '')
    .filter(Boolean);
  const filed = auth.keysFile
    ? readKeysDocument(auth.keysFile)
        .map((entry) => entry.id)
        .filter((id): id is string => typeof id === 'string')
    : [];
  return [...listed, ...filed];
}
