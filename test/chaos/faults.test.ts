import { mkdir, writeFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { noisyJpeg, renderTextLine, solidPng } from '../fixtures/images.js';
import type { StandInServer } from '../fixtures/stand-in-server.js';
import {
  type BackendModels,
  RED,
  TF_MODELS,
  waitForHealth,
  writeBackendModels,
} from '../support/backend-models.js';
import { eventually } from '../support/inference-stack.js';
import { ChaosStack } from './support/chaos-stack.js';
import { countScenario, formatTable, type ScenarioRow, settleJobs } from './support/ledger.js';
import { type SentRequest, Traffic } from './support/traffic.js';

/** Clients' patience with one request (retries with the same Idempotency-Key included). */
const PATIENCE_MS = 15_000;
/** A refusal while Redis or S3 is away must come at least this fast (and never hang). */
const FAST_REFUSAL_MS = 3_000;

/**
 * Within the workers' retry budget for an image fetch: JOB_ATTEMPTS (3) with JOB_BACKOFF_MS (500,
 * doubling) leave 1.5 s between the first fetch and the last, besides the S3 client's own retries.
 */
const S3_OUTAGE_MS = 1500;
/** A backend without workers this long has its queued jobs moved or failed. */
const ORPHAN_TIMEOUT_SECONDS = 5;

/** A call to TF Serving that takes longer than this fails BACKEND_TIMEOUT (and may fall back). */
const BACKEND_TIMEOUT_MS = 1000;
/**
 * A job for a model that only the faulty backend serves ends failed within this of its creation:
 * JOB_ATTEMPTS (3) calls of at most BACKEND_TIMEOUT_MS each, 200 + 400 ms of backoff between them,
 * and the time it queues behind the others on a busy host.
 */
const BACKEND_FAILURE_BOUND_MS = 10_000;
const ADMIN_KEY = 'chaos-admin-key-0123456789abcdef';

let chaos: ChaosStack;
let image: Buffer;
const rows: ScenarioRow[] = [];

afterAll(async () => {
  if (rows.length === 0) return;
  console.log(`\n${formatTable(rows)}\n`);
  await mkdir('test-output', { recursive: true });
  await writeFile('test-output/chaos-faults.json', `${JSON.stringify(rows, null, 2)}\n`);
});

/**
 * Sends mixed traffic, waits for the service to work, injects the fault (which returns when it
 * ends), waits for the service to work again, then counts every request and every job.
 */
async function scenario(
  name: string,
  fault: (traffic: Traffic) => Promise<void>,
  options: { concurrency?: number; image?: Buffer } = {},
): Promise<ScenarioRow> {
  const path = `/chaos/${name.replace(/[^a-z0-9]+/gi, '-')}`;
  const traffic = new Traffic({
    baseUrl: chaos.baseUrl,
    headers: chaos.headers,
    model: 'text_orientation',
    image: options.image ?? image,
    concurrency: options.concurrency ?? 16,
    asyncShare: 0.5,
    webhookUrl: chaos.receiver.url(path),
    patienceMs: PATIENCE_MS,
  });
  let window: { from: number; to: number } | undefined;
  try {
    await traffic.waitForSuccesses(20);
    const from = Date.now();
    await fault(traffic);
    window = { from, to: Date.now() };
    // The service answers again afterwards.
    await traffic.waitForSuccesses(20, 60_000);
  } finally {
    await traffic.stop();
  }
  return settle(chaos, name, path, traffic.requests, window);
}

/**
 * Reads back every job the requests made, waits for the async ones' webhooks, counts the scenario
 * into a row of the table and keeps it.
 */
async function settle(
  stack: ChaosStack,
  name: string,
  path: string,
  requests: SentRequest[],
  window: { from: number; to: number } | undefined,
): Promise<ScenarioRow> {
  const accepted = requests.flatMap((r) => [...r.jobIds]);
  const outcomes = await settleJobs(stack.baseUrl, stack.headers, accepted, 120_000);
  // Every async job that ended has its `completed` webhook (deliveries retry: wait for them).
  const asyncEnded = requests
    .filter((r) => r.kind === 'async')
    .flatMap((r) => [...r.jobIds])
    .filter((id) => outcomes.has(id));
  await eventually(
    () => {
      const delivered = new Set(stack.receiver.on(path).map((h) => JSON.parse(h.body).id));
      return asyncEnded.every((id) => delivered.has(id)) ? true : undefined;
    },
    60_000,
    'every completed webhook delivered',
  ).catch(() => undefined); // counted below as webhook faults
  const row = countScenario({
    scenario: name,
    requests,
    outcomes,
    runs: stack.runs(accepted),
    webhooks: stack.receiver.on(path),
    ...(window ? { fault: window } : {}),
  });
  rows.push(row);
  return row;
}

/** What every scenario promises: nothing accepted is lost, each request is one job. */
function expectNothingLost(row: ScenarioRow): void {
  expect(row.accepted).toBeGreaterThan(0);
  expect(row.lost).toBe(0);
  expect(row.duplicated).toBe(0);
  expect(row.webhookFaults).toBe(0);
  expect(row.succeeded + Object.values(row.failed).reduce((a, b) => a + b, 0)).toBe(row.accepted);
}

describe('faults under load', () => {
  beforeAll(async () => {
    image = await renderTextLine();
    chaos = await ChaosStack.start({
      env: { ORPHANED_JOB_TIMEOUT_SECONDS: String(ORPHAN_TIMEOUT_SECONDS) },
    });
  });
  afterAll(async () => {
    await chaos?.stop();
  });

  it('baseline: no fault', async () => {
    const row = await scenario('baseline', async (traffic) => {
      await traffic.waitForSuccesses(100);
    });
    expectNothingLost(row);
    expect(row.failed).toEqual({});
    expect(row.refused).toEqual({});
    expect(row.rerun).toBe(0);
  });

  it('workers killed with SIGKILL repeatedly, in the middle of their batches', async () => {
    const row = await scenario('worker SIGKILL x3', async (traffic) => {
      for (let i = 0; i < 3; i++) {
        const [victim] = chaos.liveWorkers();
        // Killed while at work: it has finished some jobs of this round and holds others.
        const done = victim!.logs().filter((l) => l.msg === 'job done').length;
        await eventually(
          () =>
            victim!.logs().filter((l) => l.msg === 'job done').length >= done + 5
              ? true
              : undefined,
          60_000,
          'the victim at work',
        );
        victim!.signal('SIGKILL');
        await victim!.exited;
        await chaos.addWorker();
        await traffic.waitForSuccesses(10);
      }
    });
    expectNothingLost(row);
    expect(row.failed).toEqual({});
  });

  it('the API killed with SIGKILL and restarted: clients retry with their Idempotency-Key', async () => {
    const row = await scenario('API SIGKILL + restart', async () => {
      chaos.stack.api.signal('SIGKILL');
      await chaos.stack.api.exited;
      await chaos.restartApi();
    });
    expectNothingLost(row);
    expect(row.failed).toEqual({});
  });

  it('Redis restarted: fast 503s while it is away, every accepted job completes after', async () => {
    const row = await scenario('Redis restart', async () => {
      await chaos.redis.stop();
      await new Promise((r) => setTimeout(r, 2000));
      await chaos.redis.up();
    });
    expectNothingLost(row);
    expect(row.failed).toEqual({});
    expect(row.slowestRefusalMs ?? 0).toBeLessThan(FAST_REFUSAL_MS);
  });

  it('Redis away for longer than the clients are patient: nothing accepted is lost', async () => {
    const row = await scenario('Redis away > patience', async (traffic) => {
      await chaos.redis.stop();
      // Wait until some client gave up on a request: the outage outlasted its patience.
      await eventually(
        () => (traffic.requests.some((r) => r.jobIds.size === 0 && r.ms > 0) ? true : undefined),
        PATIENCE_MS * 3,
        'a client giving up',
      );
      await chaos.redis.up();
    });
    expectNothingLost(row);
    expect(row.failed).toEqual({});
    expect(row.slowestRefusalMs ?? 0).toBeLessThan(FAST_REFUSAL_MS);
  });

  it('S3 away for a while: 503 STORAGE_UNAVAILABLE for uploads, no job fails for it', async () => {
    // A photo: images up to INLINE_IMAGE_MAX_BYTES travel with their job and never touch S3.
    const photo = await noisyJpeg();
    const row = await scenario(
      `S3 away ${S3_OUTAGE_MS / 1000} s`,
      async () => {
        await chaos.s3.down();
        await new Promise((r) => setTimeout(r, S3_OUTAGE_MS));
        await chaos.s3.up();
      },
      { image: photo },
    );
    expectNothingLost(row);
    expect(row.failed).toEqual({});
    // The API's S3 client retries a refused connection within its own bound, so a short outage
    // mostly costs uploads time; an upload that runs out of it is a fast 503 the client retries.
    for (const code of Object.keys(row.refused)) expect(code).toBe('STORAGE_UNAVAILABLE');
    if (row.slowestRefusal) expect(row.slowestRefusal).toMatch(/^503 STORAGE_UNAVAILABLE/);
    expect(row.slowestRefusalMs ?? 0).toBeLessThan(FAST_REFUSAL_MS);
  });

  it('SIGTERM to the API and to each worker: drained, nothing lost, each exits in its grace', async () => {
    const row = await scenario('SIGTERM API + workers', async () => {
      const api = chaos.stack.api;
      api.signal('SIGTERM');
      expect((await api.exited).code).toBe(0);
      await chaos.restartApi();
      for (const worker of chaos.liveWorkers()) {
        worker.signal('SIGTERM');
        expect((await worker.exited).code).toBe(0);
        await chaos.addWorker();
      }
    });
    expectNothingLost(row);
    expect(row.failed).toEqual({});
    expect(row.rerun).toBe(0);
  });

  it('the last worker of a backend dies: its jobs fail BACKEND_UNAVAILABLE, none waits forever', async () => {
    const row = await scenario('last worker gone', async () => {
      const dying = chaos.liveWorkers();
      for (const worker of dying) worker.signal('SIGKILL');
      await Promise.all(dying.map((w) => w.exited));
      // The queued jobs, and those the dead workers held once their locks run out, are swept.
      await chaos.stack.api.waitForLog(/"orphaned jobs swept"/, 120_000);
      await Promise.all([chaos.addWorker(), chaos.addWorker()]);
    });
    expectNothingLost(row);
    expect(Object.keys(row.failed)).toEqual(['BACKEND_UNAVAILABLE']);
  });
});

/**
 * The ways a backend server misbehaves, each injected into the one TF Serving replica in turn and
 * healed before the next: it takes the call and never answers, answers something that is not JSON,
 * answers after the call's timeout, or sends half an answer and dies.
 */
const BACKEND_FAULTS: [string, (server: StandInServer) => void][] = [
  ['hang', (server) => server.hold()],
  ['garbage', (server) => server.spoil('garbage')],
  ['slow', (server) => server.slow(BACKEND_TIMEOUT_MS * 3)],
  ['cut mid-answer', (server) => server.spoil('cut')],
];

describe('backends that misbehave under load', () => {
  let stack: ChaosStack;
  let models: BackendModels;
  let red: Buffer;

  beforeAll(async () => {
    models = await writeBackendModels();
    red = await solidPng({ r: RED[0], g: RED[1], b: RED[2] }, 8, 8);
    // colour_both: TF Serving first, ONNX in-process after it; colour_tf: TF Serving only.
    stack = await ChaosStack.start({
      workers: 1,
      tensorflowWorkers: 1,
      tfServing: { replicas: 1, models: TF_MODELS },
      readyModels: ['colour_tf', 'colour_both'],
      adminKey: ADMIN_KEY,
      env: {
        ...models.env,
        BACKEND_TIMEOUT_MS: String(BACKEND_TIMEOUT_MS),
        JOB_ATTEMPTS: '3',
        JOB_BACKOFF_MS: '200',
        // Circuits judge a few seconds of calls and try again soon, and the health picture is
        // fresh within a second or two: each fault is seen and healed within seconds.
        BREAKER_WINDOW_MS: '5000',
        BREAKER_RESET_MS: '2000',
        HEALTH_CHECK_INTERVAL_MS: '1000',
      },
    });
  });
  afterAll(async () => {
    await stack?.stop();
    await models?.remove();
  });

  it('hang, garbage, slow, cut: timeouts fire, circuits open, fallback serves, /health says so', async () => {
    const path = '/chaos/backend-faults';
    const traffic = (model: string) =>
      new Traffic({
        baseUrl: stack.baseUrl,
        headers: stack.headers,
        model,
        image: red,
        concurrency: 4,
        asyncShare: 0.5,
        webhookUrl: stack.receiver.url(path),
        patienceMs: PATIENCE_MS,
      });
    const tf = stack.stack.tfServing[0]!.server;
    const replica = (body: Awaited<ReturnType<typeof waitForHealth>>) =>
      body.backends.tensorflow?.replicas?.[0];
    const health = (check: Parameters<typeof waitForHealth>[1]) =>
      waitForHealth(stack.baseUrl, check, { adminKey: ADMIN_KEY, timeoutMs: 30_000 });

    const both = traffic('colour_both');
    const tfOnly = traffic('colour_tf');
    let window: { from: number; to: number } | undefined;
    /** Per fault, from its healing to a closed circuit in GET /health. */
    const recoveries: number[] = [];
    try {
      await Promise.all([both.waitForSuccesses(10), tfOnly.waitForSuccesses(10)]);
      const from = Date.now();
      for (const [fault, inject] of BACKEND_FAULTS) {
        inject(tf);
        // The circuit opens, and GET /health says the service is degraded and why.
        const during = await health((b) => replica(b)?.circuit === 'open');
        expect(during.status, fault).toBe('degraded');
        // Meanwhile the model with another backend is served there.
        await both.waitForSuccesses(10);
        tf.heal();
        tf.release();
        const healed = Date.now();
        const after = await health(
          (b) => replica(b)?.circuit === 'closed' && replica(b)?.healthy === true,
        );
        expect(after.status, fault).toBe('healthy');
        recoveries.push(Date.now() - healed);
        await tfOnly.waitForSuccesses(5);
      }
      window = { from, to: Date.now() };
      await tfOnly.waitForSuccesses(10);
    } finally {
      await Promise.all([both.stop(), tfOnly.stop()]);
    }
    const row = await settle(
      stack,
      'backend hang/garbage/slow/cut',
      path,
      [...both.requests, ...tfOnly.requests],
      window,
    );
    // Recovery here: the slowest of the faults from its healing to a closed circuit in /health.
    row.recoveryMs = Math.max(...recoveries);
    expectNothingLost(row);

    const outcomes = await settleJobs(
      stack.baseUrl,
      stack.headers,
      tfOnly.requests.flatMap((r) => [...r.jobIds]),
      30_000,
    );
    // Every job of the model with a second backend succeeded, on one or the other.
    const bothJobs = both.requests.flatMap((r) => [...r.jobIds]);
    const bothOutcomes = await settleJobs(stack.baseUrl, stack.headers, bothJobs, 30_000);
    expect([...bothOutcomes.values()].filter((o) => o.status !== 'succeeded')).toEqual([]);
    // The model only TF Serving serves failed while it misbehaved, with the backend's codes, each
    // job within the bound.
    const failed = [...outcomes.values()].filter((o) => o.status !== 'succeeded');
    expect(failed.length).toBeGreaterThan(0);
    for (const outcome of failed) {
      expect(['BACKEND_TIMEOUT', 'BACKEND_UNAVAILABLE']).toContain(outcome.code);
      expect(outcome.ms ?? Number.POSITIVE_INFINITY).toBeLessThan(BACKEND_FAILURE_BOUND_MS);
    }
    // TF Serving healed, the model it alone serves runs there again: every job sent after succeeded.
    const afterwards = tfOnly.requests
      .filter((r) => r.tries[0]!.at >= window!.to)
      .flatMap((r) => [...r.jobIds]);
    expect(afterwards.length).toBeGreaterThan(0);
    for (const id of afterwards) expect(outcomes.get(id)?.status).toBe('succeeded');
    // Timeouts fired (hang, slow), and jobs moved to the other backend.
    const tfLogs = stack.everyWorker.flatMap((w) => w.logs());
    expect(
      tfLogs.some(
        (l) => l.msg === 'job attempt failed' && String(l.err).startsWith('BACKEND_TIMEOUT'),
      ),
    ).toBe(true);
    expect(tfLogs.some((l) => l.msg === 'job moved to another backend')).toBe(true);
    // A refusal (the API routing no job to a backend it knows cannot serve) is fast, never a hang.
    expect(row.slowestRefusalMs ?? 0).toBeLessThan(FAST_REFUSAL_MS);
  });
});
