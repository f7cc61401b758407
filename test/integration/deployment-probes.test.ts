import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { ModelRegistry } from '../../shared/models/registry.js';
import { buildTestApi, type TestApi } from '../support/api-harness.js';
import { registryDocument, testConfig } from '../support/inference-stack.js';
import { cleanRedisPrefix, uniquePrefix } from '../support/services.js';
import { sharedServices } from '../support/shared-services.js';

const read = (path: string) => readFileSync(new URL(`../../${path}`, import.meta.url), 'utf8');

/** Every path the deployment files probe the API on, with where each comes from. */
function probedPaths(): [string, string][] {
  const paths: [string, string][] = [];
  const dockerfile = /HEALTHCHECK[\s\S]*?"(http:\/\/[^"]+)"/.exec(read('Dockerfile'))?.[1];
  paths.push(['Dockerfile HEALTHCHECK', new URL(dockerfile!).pathname]);

  const compose = parseYaml(read('docker-compose.yml'), { merge: true }) as {
    services: { api: { healthcheck: { test: string[] } } };
  };
  paths.push(['compose api', new URL(compose.services.api.healthcheck.test.at(-1)!).pathname]);

  for (const doc of parseAllDocuments(read('deploy/k8s/api.yaml'))) {
    const manifest = doc.toJS();
    if (manifest.kind !== 'Deployment') continue;
    for (const container of manifest.spec.template.spec.containers) {
      for (const probe of ['startupProbe', 'livenessProbe', 'readinessProbe']) {
        const path = container[probe]?.httpGet?.path;
        if (path) paths.push([`k8s api ${probe}`, path]);
      }
    }
  }
  return paths;
}

describe('the probes the deployment files name are routes the API answers', () => {
  const services = sharedServices();
  let api: TestApi;
  const prefix = uniquePrefix();

  beforeAll(async () => {
    // With API keys: probes come without one, as orchestrators send them.
    const config = testConfig(
      services,
      { prefix, bucket: uniquePrefix() },
      { API_KEYS: 'acme:acme-key-0123456789abcdef' },
    );
    api = await buildTestApi(config, { registry: ModelRegistry.fromDocument(registryDocument()) });
  });
  afterAll(async () => {
    await api?.close();
    await cleanRedisPrefix(services.redisUrl, prefix);
  });

  const paths = probedPaths();
  it('finds the probes', () => {
    expect(paths.length).toBeGreaterThanOrEqual(5);
  });

  it.each(paths)('%s: GET %s answers 200 without a key', async (_where, path) => {
    const response = await api.app.inject({ url: path });
    expect(response.statusCode).toBe(200);
  });
});
