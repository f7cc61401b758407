import { createHash, randomBytes } from 'node:crypto';
import type { Config } from '../config/config.js';
import type { Logger } from '../logging/logger.js';
import type { RedisClient } from '../redis/redis.js';
import { readTenantSecrets, WebhookSigningSecrets } from './signing-secrets.js';

/**
 * The signing secrets of every tenant, as the API (which shows each tenant its own) and the
 * webhooks worker (which signs with them) both build them: tenants' own from the keys file
 * (API_KEYS_FILE), the rest derived from the master secret. The keys file is read first, so a bad
 * one stops start-up before anything else is touched.
 */
export async function loadSigningSecrets(
  config: Config,
  redis: RedisClient,
  logger: Logger,
): Promise<WebhookSigningSecrets> {
  const tenants = config.auth.keysFile ? readTenantSecrets(config.auth.keysFile) : new Map();
  const master = await resolveMasterSecret(config, redis, logger);
  const { previousSecret } = config.webhooks;
  const secrets = new WebhookSigningSecrets({
    master,
    previousMaster: previousSecret,
    tenants,
  });
  logger.info(
    { ownSecrets: secrets.ownSecretCount, previousMaster: previousSecret !== undefined },
    'webhook signing secrets loaded',
  );
  return secrets;
}

/**
 * The master signing secret: WEBHOOK_SECRET, or (outside production, where the config refuses to
 * start without one) a development secret made once and kept in Redis, so the API and every
 * webhooks worker of the installation derive the same tenant secrets across restarts. Its use is
 * logged, loudly, with a fingerprint, never the secret: logs travel further than Redis does.
 */
async function resolveMasterSecret(
  config: Config,
  redis: RedisClient,
  logger: Logger,
): Promise<string> {
  if (config.webhooks.secret) return config.webhooks.secret;
  if (config.env === 'production') throw new Error('WEBHOOK_SECRET is required in production');
  const key = `${config.redis.prefix}:webhooks:development-secret`;
  await redis.set(key, `whsec_${randomBytes(32).toString('base64')}`, 'NX');
  const secret = await redis.get(key);
  if (!secret) throw new Error(`the development webhook secret vanished from ${key}`);
  const fingerprint = createHash('sha256').update(secret).digest('hex').slice(0, 12);
  logger.warn(
    { secretKey: key, fingerprint },
    'WEBHOOK_SECRET is not set: tenant webhook secrets are derived from a DEVELOPMENT master secret kept in Redis (each tenant reads its own at GET /webhooks/secret). Set WEBHOOK_SECRET for anything real (production refuses to start without it).',
  );
  return secret;
}
