/**
 * Floods against a real API process: with its worker stopped (the queue paused), a full queue
 * turns new work away with 503 QUEUE_FULL instead of growing the backlog; with a tiny event-loop
 * threshold, an overloaded process sheds requests with 503 OVERLOADED. In both, health probes are
 * answered throughout, nothing else fails, and the service takes work again afterwards.
 */
import { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AiGatewayClient } from '../../client/index.js';
import { QueueName } from '../../shared/queues/index.js';
import { noisyJpeg, renderTextLine } from '../fixtures/images.js';
import { imageForm } from '../support/http.js';
import { pool } from '../support/pool.js';
import { sharedServices } from '../support/shared-services.js';
import { type Stack, startStack } from '../support/stack.js';

const KEY = 'acme-flood-key-0123456789';
const MAX_WAITING = 8;

const services = sharedServices();
let image: Buffer;

beforeAll(async () => {
  image = await renderTextLine('Flood');
});

interface Answer {
  status: number;
  code?: string;
  retryAfter: string | null;
}

async function submit(stack: Stack, body: Buffer, path = '/jobs'): Promise<Answer> {
  const response = await fetch(`${stack.baseUrl}${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${KEY}` },
    body: imageForm(body, path === '/jobs' ? { model: 'text_orientation' } : {}),
  });
  const answer = (await response.json()) as { code?: string };
  return {
    status: response.status,
    retryAfter: response.headers.get('retry-after'),
    ...(answer.code ? { code: answer.code } : {}),
  };
}

/** Probes /health/live every 50 ms while `during` runs; returns every status it got. */
async function probing<T>(
  stack: Stack,
  during: Promise<T>,
): Promise<{ result: T; probes: number[] }> {
  const probes: number[] = [];
  let done = false;
  const probe = (async () => {
    while (!done) {
      const res = await fetch(`${stack.baseUrl}/health/live`).catch(() => undefined);
      probes.push(res?.status ?? 0);
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  const result = await during.finally(() => {
    done = true;
  });
  await probe;
  return { result, probes };
}

describe('a full queue under a flood', () => {
  let stack: Stack;
  let queue: Queue;

  beforeAll(async () => {
    stack = await startStack(services, {
      apiKeys: { acme: KEY },
      env: { QUEUE_MAX_WAITING: String(MAX_WAITING) },
    });
    queue = new Queue(QueueName.InferenceOnnx, {
      connection: { url: services.redisUrl },
      prefix: stack.env.REDIS_PREFIX,
    });
  });
  afterAll(async () => {
    await queue?.close();
    await stack?.stop();
  });

  it('takes QUEUE_MAX_WAITING jobs while its worker is stopped, refuses the rest with 503 QUEUE_FULL + Retry-After, and takes work again once they run', async () => {
    await queue.pause();
    const { result: answers, probes } = await probing(
      stack,
      pool(
        Array.from({ length: 120 }, (_, i) => i),
        40,
        () => submit(stack, image),
      ),
    );
    const accepted = answers.filter((a) => a.status === 202);
    const refused = answers.filter((a) => a.status === 503);
    expect(accepted).toHaveLength(MAX_WAITING);
    expect(refused).toHaveLength(120 - MAX_WAITING);
    expect(refused.every((a) => a.code === 'QUEUE_FULL' && a.retryAfter === '5')).toBe(true);
    expect(probes.length).toBeGreaterThan(0);
    expect(probes.every((s) => s === 200)).toBe(true);
    expect(await queue.getJobCountByTypes('waiting', 'prioritized', 'delayed')).toBe(MAX_WAITING);
    // Sync requests are turned away too: the backlog is the same.
    expect(await submit(stack, image, '/predict/text_orientation')).toMatchObject({
      status: 503,
      code: 'QUEUE_FULL',
    });

    await queue.resume();
    const client = new AiGatewayClient({ baseUrl: stack.baseUrl, apiKey: KEY });
    const jobs = (await client.list({ limit: 100 })).jobs;
    expect(jobs).toHaveLength(MAX_WAITING);
    const finished = await Promise.all(jobs.map((job) => client.wait(job.id)));
    expect(finished.every((job) => job.status === 'succeeded')).toBe(true);
    await expect
      .poll(async () => (await submit(stack, image)).status, { timeout: 10_000 })
      .toBe(202);
  });
});

describe('an overloaded process under a flood', () => {
  let stack: Stack;

  beforeAll(async () => {
    stack = await startStack(services, {
      apiKeys: { acme: KEY },
      // A tiny threshold: the flood itself makes the event loop lag past it.
      env: { MAX_EVENT_LOOP_DELAY_MS: '1', RATE_LIMIT_ENABLED: 'false' },
    });
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it('sheds requests with 503 OVERLOADED + Retry-After, answers health probes throughout, and recovers', async () => {
    const photo = await noisyJpeg();
    const { result: answers, probes } = await probing(
      stack,
      pool(
        Array.from({ length: 300 }, (_, i) => i),
        50,
        () => submit(stack, photo),
      ),
    );
    const byOutcome = new Map<string, number>();
    for (const a of answers) {
      const outcome = `${a.status}${a.code ? ` ${a.code}` : ''}`;
      byOutcome.set(outcome, (byOutcome.get(outcome) ?? 0) + 1);
    }
    console.log('flood outcomes:', Object.fromEntries(byOutcome));
    // Every answer is work taken or work shed; nothing failed.
    expect([...byOutcome.keys()].every((o) => o === '202' || o === '503 OVERLOADED')).toBe(true);
    expect(byOutcome.get('503 OVERLOADED') ?? 0).toBeGreaterThan(0);
    const shed = answers.find((a) => a.code === 'OVERLOADED');
    expect(shed?.retryAfter).toBe('2');
    expect(probes.every((s) => s === 200)).toBe(true);

    // Once the flood is over, the event loop settles and work is taken again.
    await expect
      .poll(async () => (await submit(stack, image)).status, { timeout: 15_000, interval: 500 })
      .toBe(202);
  });
});
