import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../shared/config/config.js';

function configError(env: NodeJS.ProcessEnv): string {
  try {
    loadConfig(env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).message;
  }
  throw new Error(`expected ${JSON.stringify(env)} to be rejected`);
}

describe('security and admission settings', () => {
  it('has safe defaults: no proxy trusted, CORS off, no TLS, the API open, a queue limit', () => {
    const config = loadConfig({});
    expect(config.http.trustProxy).toBe(false);
    expect(config.http.corsOrigins).toEqual([]);
    expect(config.http.tls).toBeUndefined();
    expect(config.auth).toEqual({});
    expect(config.admission).toEqual({
      maxWaitingPerQueue: 10_000,
      maxEventLoopDelayMs: 1000,
      maxHeapUsedBytes: 0,
      maxRssBytes: 0,
    });
    expect(config.uploads).toMatchObject({
      maxDimension: 16_384,
      maxParts: 12,
      maxFieldBytes: 2048,
    });
  });

  it.each([
    ['false', false],
    ['0', false],
    ['true', true],
    ['2', 2],
    ['127.0.0.1', ['127.0.0.1']],
    [' 10.0.0.0/8 , loopback,::1 ', ['10.0.0.0/8', 'loopback', '::1']],
    ['fd00::/8', ['fd00::/8']],
  ])('TRUST_PROXY=%s', (value, expected) => {
    expect(loadConfig({ TRUST_PROXY: value }).http.trustProxy).toEqual(expected);
  });

  it.each(['10.0.0.0/33', 'proxy.internal', '1.2.3', 'everyone'])(
    'refuses TRUST_PROXY=%s, naming the entry',
    (value) => {
      const message = configError({ TRUST_PROXY: value });
      expect(message).toContain('TRUST_PROXY');
      expect(message).toContain(`"${value}"`);
    },
  );

  it('reads CORS_ORIGINS as origins or *, and refuses paths and other schemes', () => {
    expect(loadConfig({ CORS_ORIGINS: '*' }).http.corsOrigins).toBe('*');
    expect(
      loadConfig({ CORS_ORIGINS: 'https://app.example.com, http://localhost:5173/' }).http
        .corsOrigins,
    ).toEqual(['https://app.example.com', 'http://localhost:5173']);
    expect(configError({ CORS_ORIGINS: 'https://app.example.com/path' })).toContain('CORS_ORIGINS');
    expect(configError({ CORS_ORIGINS: 'app.example.com' })).toContain('CORS_ORIGINS');
    expect(configError({ CORS_ORIGINS: 'ftp://example.com' })).toContain('CORS_ORIGINS');
  });

  it('takes TLS files in pairs', () => {
    expect(
      loadConfig({ TLS_CERT_FILE: '/tls/cert.pem', TLS_KEY_FILE: '/tls/key.pem' }).http.tls,
    ).toEqual({ certFile: '/tls/cert.pem', keyFile: '/tls/key.pem' });
    expect(configError({ TLS_CERT_FILE: '/tls/cert.pem' })).toContain('TLS_KEY_FILE');
    expect(configError({ TLS_KEY_FILE: '/tls/key.pem' })).toContain('TLS_CERT_FILE');
  });

  it('keeps API keys as given for the API to hash, and starts workers without any', () => {
    const config = loadConfig({
      API_KEYS: 'alice:0123456789abcdef',
      API_KEYS_FILE: '/keys.yaml',
      NODE_ENV: 'production',
      WEBHOOK_SECRET: `whsec_${Buffer.alloc(32, 7).toString('base64')}`,
    });
    expect(config.auth).toEqual({ apiKeys: 'alice:0123456789abcdef', keysFile: '/keys.yaml' });
    // The production refusal of an open API is the API's: workers share this config.
    expect(() =>
      loadConfig({
        NODE_ENV: 'production',
        WEBHOOK_SECRET: `whsec_${Buffer.alloc(32, 7).toString('base64')}`,
      }),
    ).not.toThrow();
  });

  it('never repeats a secret in an error message', () => {
    const message = configError({ ADMIN_API_KEY: 'short-secret', PORT: 'abc' });
    expect(message).toContain('ADMIN_API_KEY=[redacted]');
    expect(message).not.toContain('short-secret');
    expect(configError({ WEBHOOK_SECRET: 'hunter2-hunter2' })).not.toContain('hunter2');
  });

  it('maps upload and admission limits', () => {
    const config = loadConfig({
      MAX_IMAGE_DIMENSION: '4096',
      MAX_UPLOAD_PARTS: '4',
      MAX_FIELD_BYTES: '256',
      QUEUE_MAX_WAITING: '0',
      MAX_EVENT_LOOP_DELAY_MS: '250',
      MAX_HEAP_USED_BYTES: '1000000000',
      MAX_RSS_BYTES: '2000000000',
      REQUEST_TIMEOUT_MS: '5000',
    });
    expect(config.uploads).toMatchObject({ maxDimension: 4096, maxParts: 4, maxFieldBytes: 256 });
    expect(config.admission).toEqual({
      maxWaitingPerQueue: 0,
      maxEventLoopDelayMs: 250,
      maxHeapUsedBytes: 1e9,
      maxRssBytes: 2e9,
    });
    expect(config.http.requestTimeoutMs).toBe(5000);
    expect(configError({ MAX_UPLOAD_PARTS: '1' })).toContain('MAX_UPLOAD_PARTS');
  });
});
