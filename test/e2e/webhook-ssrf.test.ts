import type { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AiGatewayClient } from '../../client/index.js';
import { QueueName } from '../../shared/queues/index.js';
import { renderTextLine } from '../fixtures/images.js';
import { waitForJobState } from '../support/inference-stack.js';
import { sharedServices } from '../support/shared-services.js';
import { openQueue, type Stack, startStack } from '../support/stack.js';
import { WebhookReceiver } from '../support/webhook-receiver.js';

/** The production setting: WEBHOOK_ALLOW_PRIVATE off, no allow-list. */
describe('webhook targets are checked against SSRF, at submission and at connect time', () => {
  const services = sharedServices();
  let stack: Stack;
  let receiver: WebhookReceiver;
  let client: AiGatewayClient;
  let image: Buffer;
  let webhooks: Queue;

  beforeAll(async () => {
    receiver = await WebhookReceiver.start();
    stack = await startStack(services, {
      webhooks: true,
      env: { WEBHOOK_ALLOW_PRIVATE: 'false', WEBHOOK_BACKOFF_MS: '100' },
    });
    client = new AiGatewayClient({ baseUrl: stack.baseUrl });
    image = await renderTextLine('SSRF');
    webhooks = openQueue(stack, QueueName.Webhooks);
  });
  afterAll(async () => {
    await webhooks?.close();
    await stack?.stop();
    await receiver?.close();
  });

  it('refuses private, loopback and metadata literals, however spelled, and other schemes at submission', async () => {
    const refused = [
      receiver.url('/hook'),
      'http://2130706433/hook',
      'http://0x7f.1/hook',
      'http://[::1]/hook',
      'http://[::ffff:127.0.0.1]/hook',
      'http://169.254.169.254/latest/meta-data/',
      'http://[fd00:ec2::254]/',
      'http://10.1.2.3/hook',
      'file:///etc/passwd',
      'gopher://127.0.0.1:6379/_PING',
    ];
    for (const webhook of refused) {
      await expect(
        client.submit('text_orientation', image, { webhook }),
        webhook,
      ).rejects.toMatchObject({ status: 422, code: 'WEBHOOK_URL_REFUSED' });
    }
  });

  it('refuses at connect time a name that resolves to loopback: recorded, nothing sent, no retry', async () => {
    // `localhost` is a name, not a literal: it passes submission and is caught on the address
    // the connection would use.
    const job = await client.submit('text_orientation', image, {
      webhook: receiver.url('/by-name', 'localhost'),
    });
    expect((await client.wait(job.id)).status).toBe('succeeded');
    // The message's delivery job ended failed, not scheduled again: its one attempt is all there is.
    expect(await waitForJobState(webhooks, `msg_${job.id}_completed`)).toBe('failed');
    const deliveries = (await client.get(job.id)).webhook_deliveries;
    expect(deliveries).toHaveLength(1);
    expect(deliveries[0]).toMatchObject({ attempt: 1, status_code: null, outcome: 'failed' });
    // Regression: the error named the address the name resolved to (the tenant could map
    // internal names to private addresses); it is a code and fixed words now.
    expect(deliveries[0]!.error).toEqual({
      code: 'WEBHOOK_TARGET_FORBIDDEN',
      message: 'The webhook URL leads to an address that is not public; it was not called',
    });
    expect(JSON.stringify(await client.get(job.id))).not.toMatch(/127\.0\.0\.1|::1|loopback/);
    expect(receiver.received).toHaveLength(0);
  });
});
