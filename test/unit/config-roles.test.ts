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
  it('an inference worker starts in production without WEBHOOK_SECRET: it neither signs nor shows secrets', () => {
    const config = loadConfig(PRODUCTION, ['inference-worker']);
    expect(config.env).toBe('production');
    expect(config.webhooks.secret).toBeUndefined();
  });

  it.each(['api', 'webhooks-worker'] as const)(
    'the %s refuses production without WEBHOOK_SECRET, naming it (tenant secrets derive from it)',
    (role) => {
      expect(rejection(PRODUCTION, [role])).toContain('WEBHOOK_SECRET is required');
      expect(loadConfig({ ...PRODUCTION, WEBHOOK_SECRET: SECRET }, [role]).webhooks.secret).toBe(
        SECRET,
      );
      // Outside production the master is a development secret instead.
      expect(loadConfig({}, [role]).webhooks.secret).toBeUndefined();
    },
  );

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
