/**
 * The API docs as a person opens them: headless Chromium (Debian's `chromium`, as for the queue
 * dashboard test) loads GET /docs without a key, under the HTML pages' Content-Security-Policy,
 * and Swagger UI renders every operation of the document. Skipped without /usr/bin/chromium,
 * except under CI=true.
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { type BrowserContext, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ModelRegistry } from '../../shared/models/registry.js';
import { buildTestApi, type TestApi } from '../support/api-harness.js';
import { registryDocument, testConfig } from '../support/inference-stack.js';
import { cleanRedisPrefix, uniquePrefix } from '../support/services.js';
import { sharedServices } from '../support/shared-services.js';

const CHROMIUM = '/usr/bin/chromium';
const OUTPUT = fileURLToPath(new URL('../../test-output/', import.meta.url));
const browserMissing = !existsSync(CHROMIUM);
const inCi = process.env.CI === 'true';

if (browserMissing && !inCi) {
  console.warn(`API docs browser test SKIPPED: no ${CHROMIUM} (apt-get install -y chromium)`);
}

const services = sharedServices();
let api: TestApi;
let baseUrl: string;
let profile: string;
let browser: BrowserContext;
const prefix = uniquePrefix();

describe.skipIf(browserMissing && !inCi)('API docs in a browser', () => {
  beforeAll(async () => {
    if (browserMissing) throw new Error(`CI=true but ${CHROMIUM} is missing`);
    const config = testConfig(
      services,
      { prefix, bucket: uniquePrefix() },
      { API_KEYS: 'acme:acme-key-0123456789abcdef' },
    );
    api = await buildTestApi(config, { registry: ModelRegistry.fromDocument(registryDocument()) });
    await api.app.listen({ host: '127.0.0.1', port: 0 });
    const { port } = api.app.server.address() as { port: number };
    baseUrl = `http://127.0.0.1:${port}`;
    profile = await mkdtemp(path.join(os.tmpdir(), 'ai-gateway-chromium-'));
    browser = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
      viewport: { width: 1280, height: 900 },
    });
    await browser.route('**/*', (route) =>
      new URL(route.request().url()).hostname === '127.0.0.1' ? route.continue() : route.abort(),
    );
  });

  afterAll(async () => {
    await browser?.close();
    if (profile) await rm(profile, { recursive: true, force: true });
    await api?.close();
    await cleanRedisPrefix(services.redisUrl, prefix);
  });

  it('renders every operation, with nothing blocked by the page policy', async () => {
    const tab = browser.pages()[0] ?? (await browser.newPage());
    const violations: string[] = [];
    tab.on('console', (message) => {
      if (/Content Security Policy/i.test(message.text())) violations.push(message.text());
    });
    const response = await tab.goto(`${baseUrl}/docs`);
    expect(response?.status()).toBe(200);

    const document = (await (await fetch(`${baseUrl}/docs/json`)).json()) as {
      paths: Record<string, Record<string, unknown>>;
    };
    const operations = Object.values(document.paths).reduce(
      (n, item) => n + Object.keys(item).length,
      0,
    );
    await expect.poll(() => tab.locator('.opblock').count(), { timeout: 15_000 }).toBe(operations);
    await expect
      .poll(() => tab.getByText('/predict/{model}').count(), { timeout: 15_000 })
      .toBeGreaterThan(0);
    // The security schemes are offered: the Authorize button.
    expect(await tab.getByRole('button', { name: /authorize/i }).count()).toBeGreaterThan(0);
    expect(violations).toEqual([]);

    await mkdir(OUTPUT, { recursive: true });
    await tab.screenshot({ path: path.join(OUTPUT, 'api-docs.png'), fullPage: true });
  });
});
