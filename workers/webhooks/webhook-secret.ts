import { createHash, randomBytes } from 'node:crypto';
import type { Config } from '../../shared/config/config.js';
import type { Logger } from '../../shared/logging/logger.js';
import type { Redis } from '../../shared/redis/redis.js';

/**
 * The Standard Webhooks signing secret: WEBHOOK_SECRET, or (outside production, where the config
 * refuses to start without one) a development secret made once and kept in Redis, so every
 * webhooks worker of the installation signs with the same one across restarts. Its use is logged,
 * loudly, with where to read it (receivers need it to verify) and a fingerprint, never the secret:
 * logs travel further than Redis does.
 */
export async function resolveWebhookSecret(
  config: Config,
  redis: Redis,
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
    `WEBHOOK_SECRET is not set: webhooks are signed with a DEVELOPMENT secret kept in Redis (read it with: redis-cli GET '${key}'). Set WEBHOOK_SECRET for anything real (production refuses to start without it).`,
  );
  return secret;
}
