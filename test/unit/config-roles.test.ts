import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../shared/config/config.js';
import { PROCESS_ROLES, type ProcessRole } from '../../shared/config/process-roles.js';

const SECRET = `whsec_${Buffer.alloc(32, 7).toString('base64')}`;
const PRODUCTION = { NODE_ENV: 'production' };

function rejection(env: NodeJS.ProcessEnv, roles?: readonly ProcessRole[]): string {
  try {
    loadConfig(env, roles);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).message;
  }
  throw new Error(`expected ${JSON.stringify(env)} to be rejected for ${roles}`);
}

describe('configuration per process role', () => {
  it.each(['api', 'inference-worker'] as const)(
    'the %s starts in production without WEBHOOK_SECRET: it signs nothing',
    (role) => {
      const config = loadConfig(PRODUCTION, [role]);
      expect(config.env).toBe('production');
      expect(config.webhooks.secret).toBeUndefined();
    },
  );

  it('the webhooks worker refuses production without WEBHOOK_SECRET, naming it', () => {
    expect(rejection(PRODUCTION, ['webhooks-worker'])).toContain('WEBHOOK_SECRET is required');
    expect(
      loadConfig({ ...PRODUCTION, WEBHOOK_SECRET: SECRET }, ['webhooks-worker']).webhooks.secret,
    ).toBe(SECRET);
    // Outside production it signs with a development secret instead.
    expect(loadConfig({}, ['webhooks-worker']).webhooks.secret).toBeUndefined();
  });

  it('a process running every role (npm start) needs what each of them needs', () => {
    expect(rejection(PRODUCTION)).toContain('WEBHOOK_SECRET');
    expect(rejection(PRODUCTION, PROCESS_ROLES)).toContain('WEBHOOK_SECRET');
    expect(rejection(PRODUCTION, ['api', 'webhooks-worker'])).toContain('WEBHOOK_SECRET');
  });

  it.each(PROCESS_ROLES)('the %s still refuses a malformed value it was given', (role) => {
    // A value set by mistake is a mistake in every process, whether or not its role uses it.
    const message = rejection({ WEBHOOK_SECRET: 'hunter2-hunter2', PORT: 'abc' }, [role]);
    expect(message).toContain('WEBHOOK_SECRET=[redacted]');
    expect(message).toContain('PORT="abc"');
  });
});
