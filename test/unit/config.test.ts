import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../shared/config/config.js';

function configError(env: NodeJS.ProcessEnv): ConfigError {
  try {
    loadConfig(env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error(`expected ${JSON.stringify(env)} to be rejected`);
}

const S3 = {
  S3_ENDPOINT: 'http://minio:9000',
  S3_ACCESS_KEY: 'access',
  S3_SECRET_KEY: 'secret',
};

describe('loadConfig defaults', () => {
  it('gives a runnable local configuration from an empty environment', () => {
    const config = loadConfig({});
    expect(config.env).toBe('development');
    expect(config.logLevel).toBe('info');
    expect(config.http).toEqual({
      host: '0.0.0.0',
      port: 8000,
      trustProxy: false,
      corsOrigins: [],
      requestTimeoutMs: 60_000,
    });
    expect(config.redis.url).toBe('redis://127.0.0.1:6379');
    expect(config.storage.kind).toBe('local');
    expect(config.models).toEqual({
      configPath: 'models/models.yaml',
      repository: 'models/repository',
    });
    expect(config.backends.tensorflowServingUrls).toEqual(['http://localhost:8501']);
    expect(config.backends.onnxRuntimeUrls).toEqual([]);
    expect(config.rateLimit).toEqual({ enabled: true, max: 100, windowSeconds: 60 });
    expect(config.sync).toEqual({ defaultWaitMs: 30_000, maxWaitMs: 120_000 });
    expect(config.uploads.maxPixels).toBeGreaterThan(0);
  });

  it('does not read process.env when given an environment', () => {
    const saved = process.env.PORT;
    process.env.PORT = '1234';
    try {
      expect(loadConfig({}).http.port).toBe(8000);
    } finally {
      if (saved === undefined) delete process.env.PORT;
      else process.env.PORT = saved;
    }
  });

  it('treats empty and blank values as unset', () => {
    const config = loadConfig({ PORT: '', RATE_LIMIT_ENABLED: '   ', S3_ENDPOINT: '' });
    expect(config.http.port).toBe(8000);
    expect(config.rateLimit.enabled).toBe(true);
    expect(config.storage.kind).toBe('local');
  });

  it('ignores variables outside the schema', () => {
    const config = loadConfig({ HOME: '/root', PATH: '/bin', SOMETHING_ELSE: '!!!' });
    expect(JSON.stringify(config)).not.toContain('SOMETHING_ELSE');
    expect(JSON.stringify(config)).not.toContain('!!!');
  });
});

describe('loadConfig coercion', () => {
  it('turns numbers and booleans into their types', () => {
    const config = loadConfig({
      PORT: '9000',
      RATE_LIMIT_ENABLED: 'false',
      RATE_LIMIT_REQUESTS: '7',
      RATE_LIMIT_WINDOW: '30',
      SYNC_WAIT_SECONDS: '5',
      SYNC_WAIT_MAX_SECONDS: '10',
      MAX_IMAGE_PIXELS: '1000',
    });
    expect(config.http.port).toBe(9000);
    expect(config.rateLimit).toEqual({ enabled: false, max: 7, windowSeconds: 30 });
    expect(config.sync).toEqual({ defaultWaitMs: 5000, maxWaitMs: 10_000 });
    expect(config.uploads.maxPixels).toBe(1000);
  });

  it('trims surrounding whitespace', () => {
    expect(loadConfig({ PORT: ' 9001 ' }).http.port).toBe(9001);
    expect(loadConfig({ RATE_LIMIT_ENABLED: ' true\n' }).rateLimit.enabled).toBe(true);
  });
});

describe('loadConfig errors name the variable', () => {
  it.each([
    ['PORT', 'abc'],
    ['PORT', '70000'],
    ['PORT', '80.5'],
    ['PORT', '-1'],
    ['RATE_LIMIT_ENABLED', 'maybe'],
    ['RATE_LIMIT_REQUESTS', '0'],
    ['REDIS_URL', 'http://x'],
    ['LOG_LEVEL', 'loud'],
    ['NODE_ENV', 'staging'],
    ['S3_ENDPOINT', 'minio:9000'],
    ['S3_BUCKET', 'Not_A_Bucket'],
  ])('%s=%s', (name, value) => {
    const err = configError({ [name]: value });
    expect(err.message).toContain(`${name}="${value}"`);
  });

  it('names the allowed values of a choice in one line', () => {
    const lines = configError({ LOG_LEVEL: 'loud' }).message.split('\n').slice(1);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain('fatal, error, warn, info, debug, trace, silent');
  });

  it('reads flags as operators write them: true/false, 1/0, yes/no, on/off', () => {
    for (const yes of ['true', 'TRUE', '1', 'yes', 'on']) {
      expect(loadConfig({ RATE_LIMIT_ENABLED: yes }).rateLimit.enabled).toBe(true);
    }
    for (const no of ['false', 'False', '0', 'no', 'off']) {
      expect(loadConfig({ RATE_LIMIT_ENABLED: no }).rateLimit.enabled).toBe(false);
    }
  });

  it('refuses a URL list that is empty or holds a malformed URL', () => {
    expect(configError({ TENSORFLOW_SERVING_URL: ',,,' }).message).toContain(
      'TENSORFLOW_SERVING_URL',
    );
    expect(configError({ TENSORFLOW_SERVING_URL: 'http://a b' }).message).toContain('"http://a b"');
  });

  it('reports several bad values together', () => {
    const err = configError({ PORT: 'abc', LOG_LEVEL: 'loud', REDIS_URL: 'http://x' });
    expect(err.message).toContain('PORT="abc"');
    expect(err.message).toContain('LOG_LEVEL="loud"');
    expect(err.message).toContain('REDIS_URL="http://x"');
  });

  it('S3_ENDPOINT without keys names the missing keys', () => {
    expect(configError({ S3_ENDPOINT: S3.S3_ENDPOINT }).message).toContain('S3_ACCESS_KEY');
    expect(configError({ S3_ENDPOINT: S3.S3_ENDPOINT, S3_ACCESS_KEY: 'access' }).message).toContain(
      'S3_SECRET_KEY',
    );
  });

  it('SYNC_WAIT_SECONDS may not exceed SYNC_WAIT_MAX_SECONDS', () => {
    const err = configError({ SYNC_WAIT_SECONDS: '60', SYNC_WAIT_MAX_SECONDS: '30' });
    expect(err.message).toContain('SYNC_WAIT_SECONDS');
    expect(err.message).toContain('SYNC_WAIT_MAX_SECONDS');
    // the default maximum is 120 s
    expect(configError({ SYNC_WAIT_SECONDS: '121' }).message).toContain('SYNC_WAIT_SECONDS');
    expect(loadConfig({ SYNC_WAIT_SECONDS: '120' }).sync.defaultWaitMs).toBe(120_000);
  });
});

describe('loadConfig storage', () => {
  it('builds the S3 configuration when endpoint and keys are given', () => {
    const config = loadConfig({ ...S3, S3_BUCKET: 'images', S3_REGION: 'eu-west-1' });
    expect(config.storage).toEqual({
      kind: 's3',
      endpoint: 'http://minio:9000',
      bucket: 'images',
      region: 'eu-west-1',
      accessKeyId: 'access',
      secretAccessKey: 'secret',
      timeoutMs: 5000,
    });
  });

  it('uses a local folder without S3_ENDPOINT, keys or not', () => {
    const config = loadConfig({ S3_ACCESS_KEY: 'a', S3_SECRET_KEY: 'b', LOCAL_STORAGE_DIR: '/x' });
    expect(config.storage).toEqual({ kind: 'local', dir: '/x', bucket: 'ai-gateway' });
  });
});

describe('loadConfig backend URLs', () => {
  it('parses a comma-separated TENSORFLOW_SERVING_URL and strips trailing slashes', () => {
    const config = loadConfig({
      TENSORFLOW_SERVING_URL: 'http://tf-1:8501/, https://tf-2:8501//,,http://tf-3/v1/',
    });
    expect(config.backends.tensorflowServingUrls).toEqual([
      'http://tf-1:8501',
      'https://tf-2:8501',
      'http://tf-3/v1',
    ]);
  });

  it('names the variable and the bad URL in the list', () => {
    const err = configError({ TENSORFLOW_SERVING_URL: 'http://tf-1:8501,ftp://tf-2' });
    expect(err.message).toContain('TENSORFLOW_SERVING_URL');
    expect(err.message).toContain('ftp://tf-2');
  });

  it('parses ONNX_RUNTIME_URL the same way', () => {
    expect(loadConfig({ ONNX_RUNTIME_URL: 'http://onnx:8001/' }).backends.onnxRuntimeUrls).toEqual([
      'http://onnx:8001',
    ]);
    expect(configError({ ONNX_RUNTIME_URL: 'onnx:8001' }).message).toContain('ONNX_RUNTIME_URL');
  });

  it('maps the pool, health check and circuit breaker settings', () => {
    const { backends } = loadConfig({
      BACKEND_CONNECTIONS: '8',
      HEALTH_CHECK_INTERVAL_MS: '1000',
      HEALTH_CHECK_TIMEOUT_MS: '500',
      BREAKER_ERROR_THRESHOLD: '25',
      BREAKER_VOLUME_THRESHOLD: '10',
      BREAKER_WINDOW_MS: '20000',
      BREAKER_RESET_MS: '5000',
    });
    expect(backends.connectionsPerReplica).toBe(8);
    expect(backends.healthCheck).toEqual({ intervalMs: 1000, timeoutMs: 500 });
    expect(backends.breaker).toEqual({
      errorThresholdPercent: 25,
      volumeThreshold: 10,
      windowMs: 20_000,
      resetMs: 5000,
    });
    expect(configError({ BREAKER_ERROR_THRESHOLD: '150' }).message).toContain(
      'BREAKER_ERROR_THRESHOLD',
    );
  });
});

describe('loadConfig Redis Cluster', () => {
  const NODES = 'redis://10.0.0.1:6379,rediss://10.0.0.2:6379';

  it('connects to one Redis unless REDIS_CLUSTER is on', () => {
    expect(loadConfig({}).redis.clusterNodes).toBeUndefined();
  });

  it('takes the seed nodes from REDIS_URL with REDIS_CLUSTER and a hash-tagged prefix', () => {
    const { redis } = loadConfig({
      REDIS_URL: NODES,
      REDIS_CLUSTER: 'true',
      REDIS_PREFIX: 'gw-{ai-gateway}',
    });
    expect(redis.clusterNodes).toEqual(['redis://10.0.0.1:6379', 'rediss://10.0.0.2:6379']);
    expect(redis.prefix).toBe('gw-{ai-gateway}');
  });

  it.each([['ai-gateway'], ['{}ai-gateway'], ['ai-gateway{'], ['}ai{gateway']])(
    'refuses REDIS_PREFIX=%s on a cluster: no hash tag, keys would spread over slots',
    (prefix) => {
      const err = configError({ REDIS_URL: NODES, REDIS_CLUSTER: 'true', REDIS_PREFIX: prefix });
      expect(err.message).toContain(`REDIS_PREFIX="${prefix}" needs a {hash tag}`);
    },
  );

  it('refuses several nodes without REDIS_CLUSTER, and a node that is not a Redis URL', () => {
    expect(configError({ REDIS_URL: NODES }).message).toContain('set REDIS_CLUSTER=true');
    expect(
      configError({
        REDIS_URL: 'redis://10.0.0.1:6379,10.0.0.2:6379',
        REDIS_CLUSTER: 'true',
        REDIS_PREFIX: '{ai-gateway}',
      }).message,
    ).toContain('REDIS_URL: every node must be a redis:// or rediss:// URL');
  });
});

describe('loadConfig result', () => {
  it('is frozen all the way down', () => {
    const config = loadConfig({ ...S3 });
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.http)).toBe(true);
    expect(Object.isFrozen(config.storage)).toBe(true);
    expect(Object.isFrozen(config.backends.tensorflowServingUrls)).toBe(true);
    expect(() => {
      (config.http as { port: number }).port = 1;
    }).toThrow(TypeError);
    expect(() => {
      (config.backends.tensorflowServingUrls as string[]).push('http://x');
    }).toThrow(TypeError);
    expect(config.http.port).toBe(8000);
  });

  it('each call builds its own configuration', () => {
    expect(loadConfig({ PORT: '1' }).http.port).toBe(1);
    expect(loadConfig({ PORT: '2' }).http.port).toBe(2);
  });
});

describe('webhook settings', () => {
  const SECRET = `whsec_${Buffer.alloc(32, 7).toString('base64')}`;

  it('refuses production without WEBHOOK_SECRET, and a secret not in whsec_ form', () => {
    expect(configError({ NODE_ENV: 'production' }).message).toContain('WEBHOOK_SECRET is required');
    expect(loadConfig({ NODE_ENV: 'production', WEBHOOK_SECRET: SECRET }).webhooks.secret).toBe(
      SECRET,
    );
    expect(configError({ WEBHOOK_SECRET: 'hunter2' }).message).toContain('WEBHOOK_SECRET');
    expect(loadConfig({}).webhooks.secret).toBeUndefined();
  });

  it('takes the master secret before WEBHOOK_SECRET while it rotates, and never prints either', () => {
    const previous = `whsec_${Buffer.alloc(32, 8).toString('base64')}`;
    expect(
      loadConfig({ WEBHOOK_SECRET: SECRET, WEBHOOK_SECRET_PREVIOUS: previous }).webhooks,
    ).toMatchObject({ secret: SECRET, previousSecret: previous });
    expect(loadConfig({ WEBHOOK_SECRET: SECRET }).webhooks.previousSecret).toBeUndefined();

    const malformed = configError({
      WEBHOOK_SECRET: SECRET,
      WEBHOOK_SECRET_PREVIOUS: 'whsec_hunter2',
    });
    expect(malformed.message).toContain('WEBHOOK_SECRET_PREVIOUS=[redacted]');
    expect(malformed.message).not.toContain('hunter2');
    // Rotating to nothing, or to the same secret, is a mistake worth stopping for.
    const alone = configError({ WEBHOOK_SECRET_PREVIOUS: previous }).message;
    expect(alone).toContain('WEBHOOK_SECRET_PREVIOUS needs WEBHOOK_SECRET');
    const same = configError({ WEBHOOK_SECRET: SECRET, WEBHOOK_SECRET_PREVIOUS: SECRET }).message;
    expect(same).toContain('WEBHOOK_SECRET_PREVIOUS is the same as WEBHOOK_SECRET');
    for (const message of [alone, same]) {
      expect(message).not.toContain(SECRET.slice(6));
      expect(message).not.toContain(previous.slice(6));
    }
  });

  it('reads the allow-list and the private-address flag', () => {
    const config = loadConfig({
      WEBHOOK_ALLOWED_HOSTS: ' Hooks.Internal , 10.0.0.5 ,,',
      WEBHOOK_ALLOW_PRIVATE: 'yes',
    });
    expect(config.webhooks.allowedHosts).toEqual(['hooks.internal', '10.0.0.5']);
    expect(config.webhooks.allowPrivate).toBe(true);
    expect(loadConfig({}).webhooks).toMatchObject({ allowPrivate: false, allowedHosts: [] });
  });

  it('caps one tenant below the deliveries a webhooks worker makes at once', () => {
    expect(loadConfig({}).webhooks).toMatchObject({ concurrency: 16, tenantConcurrency: 4 });
    expect(
      loadConfig({ WEBHOOK_CONCURRENCY: '2', WEBHOOK_TENANT_CONCURRENCY: '1' }).webhooks,
    ).toMatchObject({ concurrency: 2, tenantConcurrency: 1 });
    expect(configError({ WEBHOOK_CONCURRENCY: '4' }).message).toContain(
      'WEBHOOK_TENANT_CONCURRENCY=4 must be below WEBHOOK_CONCURRENCY=4',
    );
    expect(configError({ WEBHOOK_TENANT_CONCURRENCY: '0' }).message).toContain(
      'WEBHOOK_TENANT_CONCURRENCY="0"',
    );
  });
});
