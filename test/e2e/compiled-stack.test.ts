import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AiGatewayClient, type Job, verifyWebhook } from '../../client/index.js';
import { renderTextLine, rotate180 } from '../fixtures/images.js';
import { buildCompiled } from '../support/compiled-build.js';
import { predict } from '../support/http.js';
import { eventually } from '../support/inference-stack.js';
import {
  type CompiledBuild,
  type ServiceProcess,
  startWebhookWorker,
} from '../support/processes.js';
import { startServices, type TestServices } from '../support/services.js';
import { type Stack, startStack } from '../support/stack.js';
import { WebhookReceiver } from '../support/webhook-receiver.js';

const KEY = 'compiled-e2e-key-0123456789';
const SECRET = `whsec_${randomBytes(32).toString('base64')}`;
/** Exit code of a configuration error (sysexits EX_CONFIG). */
const EXIT_CONFIG = 78;

/**
 * What ships is what is tested: the service compiled as the Dockerfile compiles it, run with plain
 * Node (no tsx), in production mode, each process given only what its role needs: the API and the
 * ONNX worker have no webhook secret, the webhooks worker has one.
 */
describe('the compiled service (dist/, as the image runs it), in production mode', () => {
  let build: CompiledBuild & { remove(): Promise<void> };
  let services: TestServices;
  let stack: Stack;
  let webhooks: ServiceProcess;
  let receiver: WebhookReceiver;
  let client: AiGatewayClient;

  beforeAll(async () => {
    build = await buildCompiled();
    services = await startServices();
    receiver = await WebhookReceiver.start();
    stack = await startStack(services, {
      compiled: build,
      apiKeys: { acme: KEY },
      // The receiver is on loopback.
      env: { NODE_ENV: 'production', WEBHOOK_ALLOW_PRIVATE: 'true' },
    });
    webhooks = startWebhookWorker({ ...stack.env, WEBHOOK_SECRET: SECRET }, build);
    await webhooks.waitForLog(/"webhooks worker started"/);
    client = new AiGatewayClient({ baseUrl: stack.baseUrl, apiKey: KEY });
  }, 300_000);

  afterAll(async () => {
    await webhooks?.stop();
    await stack?.stop();
    await receiver?.close();
    await services?.stop();
    await build?.remove();
  });

  it('answers a synchronous predict with the bundled model', async () => {
    const upright = await renderTextLine('Compiled output, production mode');
    const [a, b] = await Promise.all([
      predict(stack.baseUrl, 'text_orientation', upright, { headers: stack.headers }),
      predict(stack.baseUrl, 'text_orientation', await rotate180(upright), {
        headers: stack.headers,
      }),
    ]);
    expect(a.status).toBe(200);
    expect(a.body).toMatchObject({ status: 'succeeded', backend: 'onnx' });
    expect(a.body.result?.predictions?.[0]?.label).toBe('0');
    expect(b.body.result?.predictions?.[0]?.label).toBe('180');
  });

  it('runs an async job to the end and delivers its signed webhook', async () => {
    const job = await client.submit('text_orientation', await renderTextLine('Async, compiled'), {
      webhook: receiver.url('/compiled'),
    });
    expect((await client.wait(job.id)).status).toBe('succeeded');

    const [message] = await eventually(
      () => (receiver.on('/compiled').length > 0 ? receiver.on('/compiled') : undefined),
      20_000,
      'the webhook',
    );
    const delivered: Job = verifyWebhook(
      SECRET,
      message!.body,
      message!.headers as Record<string, string>,
    );
    expect(delivered).toMatchObject({ id: job.id, status: 'succeeded' });
  });

  it('the webhooks worker alone refuses production without WEBHOOK_SECRET', async () => {
    const unsigned = startWebhookWorker({ ...stack.env }, build);
    const { code } = await unsigned.exited;
    expect(code).toBe(EXIT_CONFIG);
    expect(unsigned.lines.join('\n')).toContain('WEBHOOK_SECRET is required in production');
  });
});
