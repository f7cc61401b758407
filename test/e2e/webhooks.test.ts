import { randomBytes } from 'node:crypto';
import type { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AiGatewayClient, type Job, verifyWebhook } from '../../client/index.js';
import { QueueName } from '../../shared/queues/index.js';
import { renderTextLine } from '../fixtures/images.js';
import { eventually, waitForIdleQueue, waitForJobState } from '../support/inference-stack.js';
import { sharedServices } from '../support/shared-services.js';
import { openQueue, type Stack, startStack } from '../support/stack.js';
import { WebhookReceiver } from '../support/webhook-receiver.js';

/** The master: it signs nothing itself, tenants' secrets are derived from it. */
const MASTER = `whsec_${randomBytes(32).toString('base64')}`;

describe('signed webhooks, delivered by the webhooks worker', () => {
  const services = sharedServices();
  let stack: Stack;
  let receiver: WebhookReceiver;
  let client: AiGatewayClient;
  let image: Buffer;
  /** The open API's one tenant's secret, as GET /webhooks/secret shows it. */
  let secret: string;
  /** One BullMQ job per message, its id the message's webhook-id. */
  let webhooks: Queue;

  beforeAll(async () => {
    receiver = await WebhookReceiver.start();
    stack = await startStack(services, {
      webhooks: true,
      env: {
        WEBHOOK_SECRET: MASTER,
        // The receiver is on loopback.
        WEBHOOK_ALLOW_PRIVATE: 'true',
        WEBHOOK_BACKOFF_MS: '200',
        WEBHOOK_TIMEOUT_MS: '2000',
      },
    });
    client = new AiGatewayClient({ baseUrl: stack.baseUrl });
    ({ secret } = await client.webhookSecret());
    image = await renderTextLine('Webhook delivery');
    webhooks = openQueue(stack, QueueName.Webhooks);
  });
  afterAll(async () => {
    await webhooks?.close();
    await stack?.stop();
    await receiver?.close();
  });

  it('delivers exactly one validly signed `completed` message per finished job', async () => {
    const count = 40;
    const jobs = await Promise.all(
      Array.from({ length: count }, (_, i) =>
        client.submit('text_orientation', image, { webhook: receiver.url(`/each/${i}`) }),
      ),
    );
    const done = await Promise.all(jobs.map((job) => client.wait(job.id)));
    expect(done.every((job) => job.status === 'succeeded')).toBe(true);

    // Each message's delivery has ended and no other message is left to send: no attempt can come
    // after this, so a duplicate would be among what the receiver has now.
    for (const job of jobs) {
      expect(await waitForJobState(webhooks, `msg_${job.id}_completed`, 15_000)).toBe('completed');
    }
    await waitForIdleQueue(webhooks);
    const messages = receiver.received.filter((r) => r.path.startsWith('/each/'));
    expect(messages).toHaveLength(count);

    const ids = new Set<string>();
    for (const message of messages) {
      const job: Job = verifyWebhook(
        secret,
        message.body,
        message.headers as Record<string, string>,
      );
      const index = Number(message.path.split('/').pop());
      expect(job.id).toBe(jobs[index]!.id);
      expect(job.status).toBe('succeeded');
      expect(job.result?.task).toBe('classification');
      expect(message.headers['webhook-id']).toBe(`msg_${job.id}_completed`);
      expect(message.headers['webhook-signature']).toMatch(/^v1,[A-Za-z0-9+/]+=*$/);
      ids.add(String(message.headers['webhook-id']));
    }
    expect(ids.size).toBe(count);

    // The receiver saw the message before the webhooks worker recorded its answer: wait for the
    // record rather than read it once.
    const after = await eventually(async () => {
      const current = await client.get(jobs[0]!.id);
      return current.webhook_deliveries.length > 0 ? current : undefined;
    }, 10_000);
    expect(after.webhook).toEqual({ url: receiver.url('/each/0'), events: ['completed'] });
    expect(after.webhook_deliveries).toEqual([
      expect.objectContaining({
        webhook_id: `msg_${after.id}_completed`,
        event: 'completed',
        attempt: 1,
        status_code: 204,
        error: null,
        outcome: 'delivered',
      }),
    ]);
  });

  it('a body tampered with, or checked with another secret (the master too), does not verify', async () => {
    const message = receiver.received[0]!;
    const headers = message.headers as Record<string, string>;
    expect(() => verifyWebhook(secret, `${message.body} `, headers)).toThrow();
    const other = `whsec_${randomBytes(32).toString('base64')}`;
    expect(() => verifyWebhook(other, message.body, headers)).toThrow();
    expect(() => verifyWebhook(MASTER, message.body, headers)).toThrow();
  });

  it('retries a failing receiver with the same webhook-id, honouring Retry-After, and records each attempt', async () => {
    const path = '/flaky';
    receiver.reply = (request, _index) => {
      const attempt = receiver.on(path).indexOf(request) + 1;
      if (request.path !== path || attempt > 2) return { status: 200 };
      return attempt === 1 ? { status: 500 } : { status: 429, headers: { 'retry-after': '1' } };
    };
    const job = await client.submit('text_orientation', image, { webhook: receiver.url(path) });
    await client.wait(job.id);
    expect(await waitForJobState(webhooks, `msg_${job.id}_completed`, 15_000)).toBe('completed');
    await waitForIdleQueue(webhooks);

    const attempts = receiver.on(path);
    expect(attempts).toHaveLength(3);
    expect(new Set(attempts.map((a) => a.headers['webhook-id']))).toEqual(
      new Set([`msg_${job.id}_completed`]),
    );
    // Same message each time: the body is fixed at the first attempt; only the timestamp moves.
    expect(new Set(attempts.map((a) => a.body)).size).toBe(1);
    for (const attempt of attempts) {
      expect(
        verifyWebhook(secret, attempt.body, attempt.headers as Record<string, string>).id,
      ).toBe(job.id);
    }
    // Retry-After: 1 after the 429: the third attempt waited at least about a second.
    expect(attempts[2]!.at - attempts[1]!.at).toBeGreaterThanOrEqual(900);

    const recorded = await eventually(async () => {
      const current = await client.get(job.id);
      return current.webhook_deliveries.length >= 3 ? current.webhook_deliveries : undefined;
    });
    expect(recorded.map((d) => [d.attempt, d.status_code, d.outcome])).toEqual([
      [1, 500, 'retrying'],
      [2, 429, 'retrying'],
      [3, 200, 'delivered'],
    ]);
  });

  it('sends `started` and `completed` when both are asked for, as two messages', async () => {
    const path = '/both';
    const job = await client.submit('text_orientation', image, {
      webhook: receiver.url(path),
      webhookEvents: ['started', 'completed'],
    });
    await client.wait(job.id);
    for (const event of ['started', 'completed']) {
      expect(await waitForJobState(webhooks, `msg_${job.id}_${event}`)).toBe('completed');
    }
    await waitForIdleQueue(webhooks);
    const ids = receiver
      .on(path)
      .map((m) => m.headers['webhook-id'])
      .sort();
    expect(ids).toEqual([`msg_${job.id}_completed`, `msg_${job.id}_started`]);
  });

  it('stops at 410 Gone and at other 4xx answers, after one attempt', async () => {
    receiver.reply = (request) => ({ status: request.path === '/gone' ? 410 : 404 });
    const gone = await client.submit('text_orientation', image, { webhook: receiver.url('/gone') });
    const missing = await client.submit('text_orientation', image, {
      webhook: receiver.url('/missing'),
    });
    for (const job of [gone, missing]) {
      // Failed, not retried: the message's delivery job has ended.
      expect(await waitForJobState(webhooks, `msg_${job.id}_completed`)).toBe('failed');
      const deliveries = (await client.get(job.id)).webhook_deliveries;
      expect(deliveries).toHaveLength(1);
      expect(deliveries[0]).toMatchObject({ attempt: 1, outcome: 'failed' });
    }
    await waitForIdleQueue(webhooks);
    expect(receiver.on('/gone')).toHaveLength(1);
    expect(receiver.on('/missing')).toHaveLength(1);
  });
});
