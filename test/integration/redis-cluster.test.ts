import { randomUUID } from 'node:crypto';
import type { Cluster } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Prediction } from '../../shared/jobs/inference-result.js';
import type { JobResource } from '../../shared/jobs/job-resource.js';
import { buildTestApi, type TestApi } from '../support/api-harness.js';
import { type InProcessWorker, startInProcessWorker } from '../support/in-process-worker.js';
import { eventually, solidPng, testConfig } from '../support/inference-stack.js';
import { RedisCluster, redisClusterToolsAvailable } from '../support/redis-cluster.js';
import { uniquePrefix } from '../support/services.js';

const inCi = process.env.CI === 'true';
const toolsMissing = !(await redisClusterToolsAvailable());
if (toolsMissing && !inCi) {
  console.warn('Redis Cluster test SKIPPED: redis-server and redis-cli are not installed');
}

const BUDGET = 2;

let cluster: RedisCluster;
let stack: InProcessWorker;
let api: TestApi;
let client: Cluster;
let image: Buffer;
const limited: TestApi[] = [];

/** The settings that put a gateway on the test's cluster, under a prefix with a hash tag. */
const onCluster = (tag: string) => ({
  REDIS_URL: cluster.url,
  REDIS_CLUSTER: 'true',
  REDIS_PREFIX: `{${tag}}`,
});

/** The colour classifier's best answer: `green` for the test's image. */
const topLabel = (job: JobResource) =>
  (job.result as Extract<Prediction, { task: 'classification' }>).predictions[0]?.label;

describe.skipIf(toolsMissing && !inCi)('the gateway on a Redis Cluster of three masters', () => {
  beforeAll(async () => {
    cluster = await RedisCluster.start();
    client = cluster.client();
    stack = await startInProcessWorker({
      env: onCluster(`ai-gateway-test-${randomUUID()}`),
    });
    api = await buildTestApi(stack.config, { registry: stack.registry });
    image = await solidPng([0, 255, 0]);
  }, 60_000);

  afterAll(async () => {
    await Promise.allSettled(limited.map((a) => a.close()));
    await api?.close();
    await stack?.stop();
    client?.disconnect();
    await cluster?.close();
  });

  const submit = (target: TestApi, url: string, headers: Record<string, string> = {}) =>
    target.app.inject({
      method: 'POST',
      url,
      payload: image,
      headers: { 'content-type': 'image/png', ...headers },
    });

  it('spreads keys over several masters: the cluster is real', async () => {
    const owners = new Set(
      await Promise.all(
        ['a', 'b', 'c', 'd', 'e', 'f'].map(async (key) => client.cluster('KEYSLOT', key)),
      ),
    );
    expect(owners.size).toBeGreaterThan(1);
    expect(client.nodes('master')).toHaveLength(3);
  });

  it('reports ready: its Redis probe answers through the cluster', async () => {
    const res = await api.app.inject({ url: '/health/ready' });
    expect(res.statusCode).toBe(200);
  });

  it('answers a sync /predict with the finished job', async () => {
    const res = await submit(api, '/predict/colour');
    expect(res.statusCode).toBe(200);
    const job = res.json<JobResource>();
    expect(job.status).toBe('succeeded');
    expect(topLabel(job)).toBe('green');
  });

  it('runs an async job to completion', async () => {
    const res = await submit(api, '/jobs?model=colour');
    expect(res.statusCode).toBe(202);
    const { id } = res.json<JobResource>();
    const done = await eventually(
      async () => {
        const job = (await api.app.inject({ url: `/jobs/${id}` })).json<JobResource>();
        return job.status === 'succeeded' ? job : undefined;
      },
      20_000,
      `job ${id} succeeded`,
    );
    expect(topLabel(done)).toBe('green');
  });

  it('replays an idempotent submission instead of making a second job', async () => {
    const headers = { 'idempotency-key': `cluster-${randomUUID()}` };
    const first = await submit(api, '/jobs?model=colour', headers);
    expect(first.statusCode).toBe(202);
    const again = await submit(api, '/jobs?model=colour', headers);
    expect(again.statusCode).toBe(202);
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(again.json<JobResource>().id).toBe(first.json<JobResource>().id);
  });

  it('keeps every key of the service in the one slot of its hash tag', async () => {
    const prefix = stack.config.redis.prefix;
    const slot = await client.cluster('KEYSLOT', prefix);
    const owner = client.slots[slot as number]?.[0];
    const node = client
      .nodes('master')
      .find((n) => `${n.options.host}:${n.options.port}` === owner);
    const keys = await node!.keys(`${prefix}*`);
    // BullMQ's (queues, jobs, events) and ours (records, idempotency, stats, status).
    expect(keys.some((key) => key.startsWith(`${prefix}:inference-onnx:`))).toBe(true);
    expect(keys.some((key) => key.startsWith(`${prefix}:job:`))).toBe(true);
    expect(keys.some((key) => key.startsWith(`${prefix}:idempotency:`))).toBe(true);
    const slots = new Set(await Promise.all(keys.map((key) => client.cluster('KEYSLOT', key))));
    expect([...slots]).toEqual([slot]);
  });

  it('shares a rate-limit budget between two gateways through the cluster', async () => {
    // Two API instances on a prefix of their own (another tag, another slot) with a budget of 2.
    const tag = `ai-gateway-limits-${randomUUID()}`;
    for (let i = 0; i < 2; i++) {
      const config = testConfig(
        stack.services,
        { prefix: `{${tag}}`, bucket: uniquePrefix(), modelRepository: stack.repository },
        { ...onCluster(tag), RATE_LIMIT_REQUESTS: String(BUDGET), RATE_LIMIT_WINDOW: '60' },
      );
      limited.push(await buildTestApi(config, { registry: stack.registry }));
    }
    const answers = [];
    for (let i = 0; i <= BUDGET; i++) {
      answers.push(await limited[i % 2]!.app.inject({ url: '/jobs' }));
    }
    expect(answers.slice(0, BUDGET).map((res) => res.statusCode)).toEqual([200, 200]);
    expect(answers[BUDGET]!.statusCode).toBe(429);
    expect(answers[BUDGET]!.json()).toMatchObject({ code: 'RATE_LIMITED' });
  });
});
