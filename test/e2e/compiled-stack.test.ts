import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AiGatewayClient, type Job, verifyWebhook } from '../../client/index.js';
import { renderTextLine, rotate180 } from '../fixtures/images.js';
import { buildCompiled } from '../support/compiled-build.js';
import { predict } from '../support/http.js';
import { eventually } from '../support/inference-stack.js';
import {
  type CompiledBuild,
  freePort,
  type ServiceProcess,
  startApi,
  startWebhookWorker,
} from '../support/processes.js';
import { sharedServices } from '../support/shared-services.js';
import { type Stack, startStack } from '../support/stack.js';
import { WebhookReceiver } from '../support/webhook-receiver.js';

const KEY = 'compiled-e2e-key-0123456789';
const SECRET = `whsec_${randomBytes(32).toString('base64')}`;
/** Exit code of a configuration error (sysexits EX_CONFIG). */
const EXIT_CONFIG = 78;

/**
 * What ships is what is tested: the service compiled as the Dockerfile compiles it, run with plain
 * Node (no tsx), in production mode, each process given only what its role needs: the ONNX worker
 * has no webhook secret; the API (which shows each tenant its own) and the webhooks worker have it.
 */
describe('the compiled service (dist/, as the image runs it), in production mode', () => {
  let build: CompiledBuild & { remove(): Promise<void> };
  const services = sharedServices();
  let stack: Stack;
  let webhooks: ServiceProcess;
  let receiver: WebhookReceiver;
  let client: AiGatewayClient;

  beforeAll(async () => {
    build = await buildCompiled();
    receiver = await WebhookReceiver.start();
    stack = await startStack(services, {
      compiled: build,
      apiKeys: { acme: KEY },
      // The receiver is on loopback.
      env: { NODE_ENV: 'production', WEBHOOK_ALLOW_PRIVATE: 'true' },
      apiEnv: { WEBHOOK_SECRET: SECRET },
    });
    webhooks = startWebhookWorker({ ...stack.env, WEBHOOK_SECRET: SECRET }, build);
    await webhooks.waitForLog(/"webhooks worker started"/);
    client = new AiGatewayClient({ baseUrl: stack.baseUrl, apiKey: KEY });
  }, 300_000);

  afterAll(async () => {
    await webhooks?.stop();
    await stack?.stop();
    await receiver?.close();
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
    // Signed with acme's own secret (derived from the master), which the API shows acme.
    const { secret } = await client.webhookSecret();
    const headers = message!.headers as Record<string, string>;
    const delivered: Job = verifyWebhook(secret, message!.body, headers);
    expect(delivered).toMatchObject({ id: job.id, status: 'succeeded' });
    expect(() => verifyWebhook(SECRET, message!.body, headers)).toThrow();
  });

  it('the API and the webhooks worker refuse production without WEBHOOK_SECRET', async () => {
    const refused = [
      startWebhookWorker({ ...stack.env }, build),
      startApi({ ...stack.env, PORT: String(await freePort()) }, build),
    ];
    for (const service of refused) {
      const { code } = await service.exited;
      expect(code, service.name).toBe(EXIT_CONFIG);
      expect(service.lines.join('\n')).toContain('WEBHOOK_SECRET is required in production');
    }
  });
});
