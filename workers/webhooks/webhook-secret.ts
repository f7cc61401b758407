import { randomBytes } from 'node:crypto';
import type { Config } from '../../shared/config/config.js';
import type { Logger } from '../../shared/logging/logger.js';
import type { Redis } from '../../shared/redis/redis.js';

/**
 * The Standard Webhooks signing secret: WEBHOOK_SECRET, or (outside production, where the config
 * refuses to start without one) a development secret made once and kept in Redis, so every
 * webhooks worker of the installation signs with the same one across restarts. It is logged, loudly:
 * receivers need it to verify, and nobody should mistake it for a production setting.
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
  logger.warn(
    { developmentSecret: secret },
    `WEBHOOK_SECRET is not set: webhooks are signed with a DEVELOPMENT secret kept in Redis (${key}). Verify with it locally; set WEBHOOK_SECRET for anything real (production refuses to start without it).`,
  );
  return secret;
}
