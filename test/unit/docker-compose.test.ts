import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv } from 'ajv';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { EnvSchema } from '../../shared/config/env-schema.js';

/**
 * No Docker engine runs where the tests do, so the compose file is checked as data: against the
 * Compose Specification's schema, and for the references a `docker compose config` would not
 * catch (variables the gateway does not read, files that are not there).
 */
const root = fileURLToPath(new URL('../..', import.meta.url));
const source = readFileSync(join(root, 'docker-compose.yml'), 'utf8');
// Compose resolves YAML merge keys (`<<: *gateway`) before it validates.
const compose = parseYaml(source, { merge: true }) as ComposeFile;
const services = Object.entries(compose.services);

interface HealthCheck {
  test: string[];
}
interface Service {
  build?: unknown;
  image?: string;
  command?: string[];
  restart?: string;
  environment?: Record<string, string>;
  volumes?: string[];
  ports?: string[];
  profiles?: string[];
  healthcheck?: HealthCheck;
  depends_on?: Record<string, { condition: string }>;
  deploy?: { replicas?: number };
}
interface ComposeFile {
  services: Record<string, Service>;
  volumes?: Record<string, unknown>;
}

/** The services that run this repository's image (the API and the worker pools). */
const gatewayServices = services.filter(([, service]) => service.build !== undefined);
const knownVariables = new Set(Object.keys(EnvSchema.properties));
const defaults = EnvSchema.properties as Record<string, { default?: unknown }>;

/** A one-shot service: runs to completion, is never restarted, others wait for it to finish. */
const isOneShot = (service: Service) => service.restart === 'no';

describe('docker-compose.yml', () => {
  it('is valid against the Compose Specification schema', () => {
    // Draft-07, Ajv's default dialect; its `$schema` spells the draft's URI in a way Ajv does not
    // recognise (https, no fragment).
    const { $schema: _dialect, ...schema } = JSON.parse(
      readFileSync(join(root, 'test/fixtures/schemas/compose-spec.json'), 'utf8'),
    );
    const validate = new Ajv({ allErrors: true, strict: false }).compile(schema);
    const valid = validate(compose);
    expect(validate.errors ?? [], JSON.stringify(validate.errors, null, 2)).toEqual([]);
    expect(valid).toBe(true);
  });

  it('sets only variables the gateway reads, in every service that runs its image', () => {
    expect(gatewayServices.map(([name]) => name)).toEqual(
      expect.arrayContaining(['api', 'worker-onnx', 'worker-tensorflow', 'worker-webhooks']),
    );
    for (const [name, service] of gatewayServices) {
      const unknown = Object.keys(service.environment ?? {}).filter((v) => !knownVariables.has(v));
      expect(unknown, name).toEqual([]);
    }
  });

  it("passes the seed's documented variables to the API", () => {
    const api = compose.services.api!.environment ?? {};
    for (const name of [
      'TENSORFLOW_SERVING_URL',
      'ONNX_RUNTIME_URL',
      'RATE_LIMIT_ENABLED',
      'RATE_LIMIT_REQUESTS',
      'RATE_LIMIT_WINDOW',
    ]) {
      expect(api, name).toHaveProperty(name);
    }
  });

  it('gives the webhook master secret to the API and the webhooks worker only (configuration per role)', () => {
    // The worker signs with the secrets derived from it; the API shows each tenant its own.
    const holders = services.filter(([, s]) => s.environment && 'WEBHOOK_SECRET' in s.environment);
    expect(holders.map(([name]) => name)).toEqual(['api', 'worker-webhooks']);
  });

  it('mounts only files and folders that exist, and declares every named volume', () => {
    for (const [name, service] of services) {
      for (const volume of service.volumes ?? []) {
        const [from = ''] = volume.split(':');
        if (from.startsWith('.') || from.startsWith('/')) {
          expect(existsSync(join(root, from)), `${name}: ${from}`).toBe(true);
        } else {
          expect(compose.volumes ?? {}, `${name}: volume ${from}`).toHaveProperty(from);
        }
      }
    }
  });

  it('writes no credential into the file: secrets are required variables', () => {
    for (const [name, service] of services) {
      for (const [variable, value] of Object.entries(service.environment ?? {})) {
        if (!/PASSWORD|SECRET/.test(variable)) continue;
        // The previous webhook master is set only while rotating: it defaults to nothing.
        if (variable === 'WEBHOOK_SECRET_PREVIOUS') {
          expect(String(value), name).toMatch(/^\$\{WEBHOOK_SECRET_PREVIOUS:-\}$/);
          continue;
        }
        // `${NAME:?message}`: compose refuses to start without it; no default to fall back on.
        expect(String(value), `${name}: ${variable}`).toMatch(/^\$\{[A-Z0-9_]+:\?[^}]+\}$/);
      }
    }
    // Optional API keys default to nothing, never to a value someone could guess.
    for (const [variable, value] of Object.entries(compose.services.api!.environment ?? {})) {
      if (/API_KEY/.test(variable)) expect(String(value), variable).toMatch(/^\$\{[A-Z0-9_]+:-\}$/);
    }
  });

  it('publishes only the API (or a proxy in front of it) beyond loopback', () => {
    for (const [name, service] of services) {
      const frontsTheApi = name === 'api' || 'api' in (service.depends_on ?? {});
      if (frontsTheApi || service.profiles) continue;
      for (const port of service.ports ?? []) {
        expect(port, `${name} publishes ${port}`).toMatch(/^127\.0\.0\.1:/);
      }
    }
    // The API replicas are reached through nginx only.
    expect(compose.services.api!.ports).toBeUndefined();
    expect(compose.services.nginx!.ports).toEqual(['8000:8000']);
  });

  it('checks the health of every long-running service, and starts each after what it needs', () => {
    for (const [name, service] of services) {
      if (isOneShot(service)) continue;
      expect(service.healthcheck?.test, `${name} has no health check`).toBeDefined();
    }
    for (const [name, service] of services) {
      for (const [dependency, { condition }] of Object.entries(service.depends_on ?? {})) {
        const target = compose.services[dependency];
        expect(target, `${name} depends on ${dependency}`).toBeDefined();
        if (isOneShot(target!)) {
          expect(condition, `${name} -> ${dependency}`).toBe('service_completed_successfully');
        } else {
          expect(['service_healthy', 'service_started'], `${name} -> ${dependency}`).toContain(
            condition,
          );
        }
      }
    }
    // The gateway processes wait for Redis to answer and for the bucket and its user to exist.
    for (const [name, service] of gatewayServices) {
      expect(service.depends_on, name).toMatchObject({
        redis: { condition: 'service_healthy' },
        'minio-setup': { condition: 'service_completed_successfully' },
      });
    }
  });

  it("probes the ports the gateway listens on: the API's PORT and each worker's metrics port", () => {
    const probed = (service: Service) => new URL(service.healthcheck!.test.at(-1)!);
    expect(probed(compose.services.api!)).toMatchObject({
      port: String(defaults.PORT!.default),
      pathname: '/health/ready',
    });
    for (const [name, service] of gatewayServices.filter(([n]) => n.startsWith('worker-'))) {
      expect(probed(service), name).toMatchObject({
        port: String(defaults.WORKER_METRICS_PORT!.default),
        pathname: '/metrics',
      });
      expect(service.command?.slice(0, 2), name).toEqual(['node', 'dist/workers/main.js']);
    }
  });

  it('runs two ONNX workers', () => {
    expect(compose.services['worker-onnx']?.deploy?.replicas).toBe(2);
  });

  it("grants the gateway's MinIO user the bucket the gateway is told to use, and only it", () => {
    const policy = JSON.parse(
      readFileSync(join(root, 'deploy/minio/gateway-policy.json'), 'utf8'),
    ) as { Statement: { Resource: string[] }[] };
    const bucket = compose.services.api!.environment?.S3_BUCKET;
    const resources = policy.Statement.flatMap((s) => s.Resource);
    expect(resources.length).toBeGreaterThan(0);
    for (const resource of resources) {
      expect(resource).toMatch(new RegExp(`^arn:aws:s3:::${bucket}(/\\*)?$`));
    }
    expect(compose.services['minio-setup']?.environment?.GATEWAY_BUCKET).toBe(bucket);
  });
});
