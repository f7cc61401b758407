/**
 * How the API process starts with and without keys (or tokens): open with a loud warning in
 * development, refused in production (exit 78, a configuration error supervisors do not restart), and a bad
 * keys file stops it naming the entry, never the key.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, startApi } from '../support/processes.js';
import { cleanRedisPrefix, uniquePrefix } from '../support/services.js';
import { sharedServices } from '../support/shared-services.js';

const EXIT_CONFIG = 78;
const WEBHOOK_SECRET = `whsec_${Buffer.alloc(32, 7).toString('base64')}`;

describe('API start-up and keys', () => {
  const services = sharedServices();
  let dir: string;
  const prefix = uniquePrefix();

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'api-keys-startup-'));
  });
  afterAll(async () => {
    await cleanRedisPrefix(services.redisUrl, prefix);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const env = async (extra: Record<string, string>) => ({
    NODE_ENV: 'test',
    HOST: '127.0.0.1',
    PORT: String(await freePort()),
    REDIS_URL: services.redisUrl,
    REDIS_PREFIX: prefix,
    LOCAL_STORAGE_DIR: path.join(dir, 'objects'),
    ...extra,
  });

  it('refuses to start open with NODE_ENV=production', async () => {
    const api = startApi(await env({ NODE_ENV: 'production', WEBHOOK_SECRET }));
    const { code } = await api.exited;
    expect(code).toBe(EXIT_CONFIG);
    expect(api.lines.join('\n')).toMatch(/No API keys configured .*refusing to run open/);
  });

  it('starts open elsewhere, saying so loudly', async () => {
    const api = startApi(await env({}));
    try {
      const line = await api.waitForLog(/THE API IS OPEN/);
      expect(JSON.parse(line)).toMatchObject({ level: 40 });
      await api.waitForLog(/Server listening/);
    } finally {
      await api.stop();
    }
  });

  it('starts in production with a keys file, logging how many keys and none of them', async () => {
    const file = path.join(dir, 'keys.yaml');
    const key = 'production-key-0123456789abcdef';
    await writeFile(file, `keys:\n  - id: acme\n    key: ${key}\n`);
    const api = startApi(
      await env({ NODE_ENV: 'production', WEBHOOK_SECRET, API_KEYS_FILE: file }),
    );
    try {
      expect(JSON.parse(await api.waitForLog(/API keys loaded/))).toMatchObject({ keys: 1 });
      await api.waitForLog(/Server listening/);
      expect(api.lines.join('\n')).not.toContain(key);
    } finally {
      await api.stop();
    }
  });

  it('starts in production with tokens and no keys: not open', async () => {
    const jwks = 'https://id.example.com/.well-known/jwks.json';
    const api = startApi(await env({ NODE_ENV: 'production', WEBHOOK_SECRET, JWT_JWKS_URL: jwks }));
    try {
      const line = JSON.parse(await api.waitForLog(/API keys loaded/));
      expect(line).toMatchObject({ keys: 0, tokens: jwks });
      await api.waitForLog(/Server listening/);
      expect(api.lines.join('\n')).not.toContain('THE API IS OPEN');
    } finally {
      await api.stop();
    }
  });

  it('stops on a malformed key entry, naming the entry and not the key', async () => {
    const api = startApi(await env({ API_KEYS: 'acme:short-secret' }));
    const { code } = await api.exited;
    expect(code).toBe(EXIT_CONFIG);
    const failure = api.logs().find((l) => l.msg === 'API failed to start');
    expect(failure?.err).toMatch(/API_KEYS entry 1 \(id "acme"\): the key must have at least 16/);
    expect(api.lines.join('\n')).not.toContain('short-secret');
  });

  // Regression: the parser's message quoted the line around the error into the fatal log line.
  it('stops on a keys file that does not parse, naming the file and line and not the key', async () => {
    const file = path.join(dir, 'broken-keys.json');
    const key = 'unquoted-key-0123456789abcdef';
    await writeFile(file, `{"keys": [\n  {"id": "acme", "key": ${key}}\n]}\n`);
    const api = startApi(await env({ API_KEYS_FILE: file }));
    const { code } = await api.exited;
    expect(code).toBe(EXIT_CONFIG);
    expect(api.lines.join('\n')).not.toContain(key.slice(0, 8));
    const failure = api.logs().find((l) => l.msg === 'API failed to start');
    expect(failure?.err).toMatch(`API_KEYS_FILE ${file} is not valid JSON`);
    expect(failure?.err).toMatch(/at line 2, column \d+/);
  });
});
