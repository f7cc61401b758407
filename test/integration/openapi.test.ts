import SwaggerParser from '@apidevtools/swagger-parser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ModelRegistry } from '../../shared/models/registry.js';
import { buildTestApi, type TestApi } from '../support/api-harness.js';
import { registryDocument, testConfig } from '../support/inference-stack.js';
import { cleanRedisPrefix, uniquePrefix } from '../support/services.js';
import { sharedServices } from '../support/shared-services.js';

const KEY = 'acme-key-0123456789abcdef';
const METHODS = ['get', 'post', 'put', 'patch', 'delete'] as const;
type Method = (typeof METHODS)[number];

/** The parts of an OpenAPI 3.1 document these tests read. */
interface Schema {
  type?: string;
  format?: string;
  properties?: Record<string, Schema>;
  required?: string[];
}
interface Operation {
  summary?: string;
  security?: Record<string, string[]>[];
  parameters?: { name: string; in: string }[];
  requestBody?: { content: Record<string, { schema: Schema }> };
  responses?: Record<string, { content?: Record<string, { schema: Schema }> }>;
}
interface OpenApiDocument {
  openapi: string;
  paths: Record<string, Partial<Record<Method, Operation>>>;
  components: { securitySchemes: Record<string, Record<string, string>> };
}
type ParserInput = Parameters<typeof SwaggerParser.validate>[0];

const services = sharedServices();
let api: TestApi;
let document: OpenApiDocument;
const prefix = uniquePrefix();

beforeAll(async () => {
  const config = testConfig(
    services,
    { prefix, bucket: uniquePrefix() },
    { API_KEYS: `acme:${KEY}`, ADMIN_API_KEY: 'admin-key-0123456789abcdef' },
  );
  api = await buildTestApi(config, { registry: ModelRegistry.fromDocument(registryDocument()) });
  // Public: no key needed for the document or the UI.
  const res = await api.app.inject({ url: '/docs/json' });
  expect(res.statusCode).toBe(200);
  document = res.json<OpenApiDocument>();
});

afterAll(async () => {
  await api?.close();
  await cleanRedisPrefix(services.redisUrl, prefix);
});

/**
 * Every method and path the app serves, from Fastify's own route tree, in OpenAPI's spelling
 * (`/jobs/{id}`). Left out: HEAD (implied by GET), the docs' own files, and the queue dashboard's
 * internal API and assets (the dashboard is documented as its page).
 */
function servedOperations(): string[] {
  const tree = api.app.printRoutes({ commonPrefix: false });
  const operations: string[] = [];
  const stack: string[] = [];
  for (const line of tree.split('\n')) {
    const match = /^([│ ]*)[├└]── (\S+) \(([A-Z, ]+)\)$/.exec(line);
    if (!match) continue;
    const depth = match[1]!.length / 4;
    stack.length = depth;
    stack.push(match[2]!);
    const path = stack.join('').replace(/:(\w+)/g, '{$1}');
    for (const method of match[3]!.split(', ')) {
      if (method === 'HEAD' || method === 'OPTIONS') continue;
      if (path.startsWith('/docs') || path.startsWith('/admin/queues/')) continue;
      operations.push(`${method} ${path}`);
    }
  }
  return operations.sort();
}

function documentedOperations(doc: OpenApiDocument): string[] {
  return Object.entries(doc.paths)
    .flatMap(([path, item]) =>
      METHODS.filter((m) => item[m]).map((m) => `${m.toUpperCase()} ${path}`),
    )
    .sort();
}

describe('the OpenAPI document', () => {
  it('is a valid OpenAPI 3.1 document', async () => {
    expect(document.openapi).toBe('3.1.0');
    const input = structuredClone(document) as unknown as ParserInput;
    await expect(SwaggerParser.validate(input)).resolves.toBeTruthy();
  });

  it('would be refused if broken (the validator is not a rubber stamp)', async () => {
    const broken = structuredClone(document);
    const operation = broken.paths['/jobs/{id}']?.get;
    expect(operation?.parameters?.[0]).toBeDefined();
    delete operation?.responses;
    operation!.parameters![0]!.in = 'cookie-jar';
    await expect(SwaggerParser.validate(broken as unknown as ParserInput)).rejects.toThrow();
  });

  it('lists every route the app serves, and nothing it does not', () => {
    const served = servedOperations();
    expect(served).toContain('POST /predict/{model}');
    expect(served).toContain('DELETE /admin/rate-limits/{client}');
    expect(served).toContain('GET /admin/queues');
    expect(served.length).toBeGreaterThanOrEqual(13);
    expect(documentedOperations(document)).toEqual(served);
  });

  it('describes every operation: parameters for each path parameter, bodies for uploads, answers and problems', () => {
    for (const [path, item] of Object.entries(document.paths)) {
      for (const method of METHODS) {
        const operation = item[method];
        if (!operation) continue;
        const where = `${method.toUpperCase()} ${path}`;
        expect(operation.summary, where).toBeTruthy();
        expect(Object.keys(operation.responses ?? {}).length, where).toBeGreaterThan(0);
        const documented = (operation.parameters ?? []).map((p) => p.name);
        for (const [, name] of path.matchAll(/\{(\w+)\}/g))
          expect(documented, where).toContain(name);
        if (path.startsWith('/admin/queues')) continue;
        const ok = Object.keys(operation.responses ?? {}).find((s) => s.startsWith('2'));
        expect(ok, where).toBeTruthy();
        if (!path.startsWith('/health') && path !== '/metrics') {
          const problem = operation.responses?.['4XX']?.content;
          expect(problem?.['application/problem+json'], where).toBeTruthy();
        }
      }
    }
    const upload = document.paths['/predict/{model}']?.post?.requestBody;
    expect(Object.keys(upload?.content ?? {})).toEqual([
      'multipart/form-data',
      'image/*',
      'application/octet-stream',
    ]);
    const form = upload?.content['multipart/form-data']?.schema;
    expect(form?.properties?.file).toMatchObject({ type: 'string', format: 'binary' });
    expect(form?.required).toEqual(['file']);
    expect(document.paths['/jobs']?.post?.requestBody).toBeTruthy();
    const list = document.paths['/jobs']?.get?.parameters?.map((p) => ('name' in p ? p.name : ''));
    expect(list).toEqual(['limit', 'cursor']);
  });

  it('declares the security schemes, and which routes need which key', () => {
    expect(Object.keys(document.components.securitySchemes ?? {}).sort()).toEqual([
      'adminBasic',
      'adminBearer',
      'apiKeyBearer',
      'apiKeyHeader',
    ]);
    expect(document.components.securitySchemes?.apiKeyHeader).toMatchObject({
      type: 'apiKey',
      in: 'header',
      name: 'X-API-Key',
    });
    const security = (method: Method, path: string) => document.paths[path]?.[method]?.security;
    expect(security('get', '/health')).toEqual([]);
    expect(security('get', '/metrics')).toEqual([]);
    expect(security('post', '/jobs')).toEqual([{ apiKeyBearer: [] }, { apiKeyHeader: [] }]);
    // A tenant's own webhook secret, behind its key like its jobs.
    expect(security('get', '/webhooks/secret')).toEqual(security('post', '/jobs'));
    expect(security('delete', '/admin/rate-limits/{client}')).toEqual([
      { adminBearer: [] },
      { adminBasic: [] },
    ]);
  });
});

describe('GET /docs', () => {
  it('serves the UI to anyone, under the HTML pages policy', async () => {
    const res = await api.app.inject({ url: '/docs/' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/html/);
    expect(res.body).toContain('swagger-ui');
    expect(res.headers['content-security-policy']).toContain("script-src 'self'");
    const yaml = await api.app.inject({ url: '/docs/yaml' });
    expect(yaml.statusCode).toBe(200);
    expect(yaml.body).toContain('openapi: 3.1.0');
  });
});
