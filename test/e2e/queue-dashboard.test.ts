/**
 * The queue dashboard as an operator sees it: headless Chromium (Debian's `chromium` package, driven
 * by playwright-core; the browser cannot be downloaded here) logs in with the admin key, finds every
 * queue, opens the failed job and reads its reason, and leaves a screenshot in test-output/.
 *
 * Without /usr/bin/chromium the test is skipped with a message, except under CI=true, where it fails:
 * .ci/run installs the browser, so a missing one is a broken CI, not a reason to pass.
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { type BrowserContext, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { QueueName } from '../../shared/queues/index.js';
import { OnnxRuntimeBackend } from '../../workers/backends/onnx-runtime.backend.js';
import { InferenceWorker } from '../../workers/inference-worker.js';
import { buildTestApi, type TestApi } from '../support/api-harness.js';
import { createModelRepository, solidPng, testConfig } from '../support/inference-stack.js';
import {
  FAILING_MODEL,
  injectPredict,
  observabilityRegistry,
} from '../support/observability-stack.js';
import { cleanRedisPrefix, uniquePrefix } from '../support/services.js';
import { sharedServices } from '../support/shared-services.js';

const CHROMIUM = '/usr/bin/chromium';
const ADMIN_KEY = `admin-${uniquePrefix()}`;
const OUTPUT = fileURLToPath(new URL('../../test-output/', import.meta.url));
const browserMissing = !existsSync(CHROMIUM);
const inCi = process.env.CI === 'true';

if (browserMissing && !inCi) {
  console.warn(
    `queue dashboard browser test SKIPPED: no ${CHROMIUM} (apt-get install -y chromium to run it)`,
  );
}

const services = sharedServices();
let repository: string;
let prefix: string;
let worker: InferenceWorker;
let api: TestApi;
let baseUrl: string;
let profile: string;
let browser: BrowserContext;
let failedJobId: string;

describe.skipIf(browserMissing && !inCi)('queue dashboard in a browser', () => {
  beforeAll(async () => {
    if (browserMissing) {
      throw new Error(`CI=true but ${CHROMIUM} is missing: .ci/run should have installed chromium`);
    }
    repository = await createModelRepository();
    const registry = observabilityRegistry(repository);
    prefix = uniquePrefix();
    const config = testConfig(
      services,
      { prefix, bucket: uniquePrefix(), modelRepository: repository },
      { ADMIN_API_KEY: ADMIN_KEY, SYNC_WAIT_SECONDS: '10' },
    );
    worker = await InferenceWorker.start({
      config,
      registry,
      backend: new OnnxRuntimeBackend({ repository }),
      logger: pino({ level: 'silent' }),
    });
    api = await buildTestApi(config, { registry });
    await api.app.listen({ host: '127.0.0.1', port: 0 });
    const { port } = api.app.server.address() as { port: number };
    baseUrl = `http://127.0.0.1:${port}`;

    // Two jobs that succeed and one that fails for good.
    const red = await solidPng([255, 0, 0]);
    for (let i = 0; i < 2; i++) {
      expect((await injectPredict(api, 'colour', red)).res.statusCode).toBe(200);
    }
    const failed = await injectPredict(api, FAILING_MODEL, red);
    expect(failed.res.statusCode).toBe(500);
    failedJobId = failed.res.json<{ job_id: string }>().job_id;

    profile = await mkdtemp(path.join(os.tmpdir(), 'ai-gateway-chromium-'));
    browser = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        // Nothing but this machine is reached (the dashboard links a web font).
        '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1',
      ],
      // What a person types into the browser's login prompt: any user name, the key as password.
      httpCredentials: { username: 'admin', password: ADMIN_KEY },
      viewport: { width: 1280, height: 800 },
    });
    await browser.route('**/*', (route) =>
      new URL(route.request().url()).hostname === '127.0.0.1' ? route.continue() : route.abort(),
    );
  });

  afterAll(async () => {
    await browser?.close();
    if (profile) await rm(profile, { recursive: true, force: true });
    await api?.close();
    await worker?.close();
    if (prefix) await cleanRedisPrefix(services.redisUrl, prefix);
    if (repository) await rm(repository, { recursive: true, force: true });
  });

  async function page(): Promise<Page> {
    return browser.pages()[0] ?? browser.newPage();
  }

  it('refuses a visitor without the key, with a login prompt', async () => {
    const res = await fetch(`${baseUrl}/admin/queues`);
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toContain('Basic realm="ai-gateway admin"');
    expect(await res.json()).toMatchObject({ code: 'ADMIN_UNAUTHORIZED' });
  });

  it('shows every queue, and the failed job with its reason', async () => {
    const tab = await page();
    // The page works under its Content-Security-Policy: the browser blocks nothing it needs.
    const violations: string[] = [];
    tab.on('console', (message) => {
      if (/Content Security Policy/i.test(message.text())) violations.push(message.text());
    });
    const response = await tab.goto(`${baseUrl}/admin/queues`);
    expect(response?.status()).toBe(200);
    expect(response?.headers()['content-security-policy']).toContain("script-src 'self'");

    // Every queue of the system is listed, from the QueueName enum. (expect.poll gives up after
    // 1 s unless told otherwise: too short for a page rendered on a busy machine.)
    const sidebar = tab.getByRole('navigation');
    for (const name of Object.values(QueueName)) {
      await expect
        .poll(() => sidebar.getByText(name, { exact: true }).count(), { timeout: 15_000 })
        .toBe(1);
    }

    await sidebar.getByText(QueueName.InferenceOnnx, { exact: true }).click();
    await tab.waitForURL(/\/admin\/queues\/queue\/inference-onnx/);
    await tab.getByRole('link', { name: /^failed/i }).click();
    await tab.waitForURL(/status=failed/);

    // The failed job is listed; open it on its own page and read why it failed.
    await tab.getByRole('link', { name: failedJobId }).click();
    await tab.waitForURL(new RegExp(`/admin/queues/queue/inference-onnx/${failedJobId}`));
    await tab.getByRole('tab', { name: 'Error' }).click();
    const reason = tab.getByRole('tabpanel');
    await expect
      .poll(() => reason.textContent(), { timeout: 15_000 })
      .toMatch(
        /INFERENCE_FAILED: postprocessing: The model has 2 labels but its output has 3 classes/,
      );

    expect(violations).toEqual([]);
    await mkdir(OUTPUT, { recursive: true });
    const screenshot = path.join(OUTPUT, 'queue-dashboard-failed-job.png');
    await tab.screenshot({ path: screenshot, fullPage: true });
    expect(existsSync(screenshot)).toBe(true);
  });
});
