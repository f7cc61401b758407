import { afterEach, describe, expect, it } from 'vitest';
import { failureCode } from '../../shared/errors/index.js';
import { ReplicaPool } from '../../workers/backends/remote/replica-pool.js';
import { StandInServer } from '../fixtures/stand-in-server.js';
import { eventually } from '../support/inference-stack.js';

/** A server that answers every POST /work as inference (so it can be slowed, failed, downed). */
async function server(): Promise<StandInServer> {
  const s = new StandInServer(async (method, path) =>
    method === 'POST' && path === '/work'
      ? { status: 200, body: { ok: true }, inference: true }
      : path === '/bad'
        ? { status: 400, body: { error: 'bad input' }, inference: true }
        : undefined,
  );
  await s.start();
  return s;
}

const breaker = { errorThresholdPercent: 50, volumeThreshold: 3, windowMs: 10_000, resetMs: 500 };
const work = { method: 'POST' as const, path: '/work', body: '{}' };
const servers: StandInServer[] = [];
const pools: ReplicaPool[] = [];

async function setup(count: number, timeoutMs = 2_000) {
  const started = await Promise.all(Array.from({ length: count }, () => server()));
  servers.push(...started);
  const pool = new ReplicaPool({
    urls: started.map((s) => s.url),
    name: 'Test server',
    timeoutMs,
    connections: 4,
    breaker,
  });
  pools.push(pool);
  return { pool, servers: started };
}

afterEach(async () => {
  await Promise.all(pools.splice(0).map((p) => p.close()));
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

function codeOf(err: unknown): string {
  return failureCode((err as Error).message) ?? (err as Error).message;
}

describe('ReplicaPool', () => {
  it('spreads requests over the replicas, sequential and concurrent', async () => {
    const {
      pool,
      servers: [a, b],
    } = await setup(2);
    for (let i = 0; i < 10; i++) await pool.send(work);
    expect(a!.counts.inference).toBe(5);
    expect(b!.counts.inference).toBe(5);

    // With one replica stuck on a request, least-outstanding sends every later arrival to the
    // other one, which answers in between (turns would give each 10).
    a!.hold();
    const first = [pool.send(work), pool.send(work)];
    // Both idle: one each. The other one answers; the stuck one keeps its request.
    expect(pool.health().map((r) => r.inFlight)).toEqual([1, 1]);
    await Promise.race(first);
    expect(pool.health().map((r) => r.inFlight)).toEqual([1, 0]);
    for (let i = 0; i < 18; i++) await pool.send(work);
    a!.release();
    expect((await Promise.all(first)).map((r) => r.status)).toEqual([200, 200]);
    expect(a!.counts.inference - 5).toBe(1);
    expect(b!.counts.inference - 5).toBe(19);
  });

  it('a replica that is down fails no request: the call moves to the next one', async () => {
    const {
      pool,
      servers: [a, b],
    } = await setup(2);
    await a!.down();
    const answers = await Promise.all(Array.from({ length: 12 }, () => pool.send(work)));
    expect(answers.every((r) => r.status === 200 && r.replica === b!.url)).toBe(true);
    expect(b!.counts.inference).toBe(12);
  });

  it("answers 503 from one replica are retried on another; 400 is the caller's answer", async () => {
    const {
      pool,
      servers: [a, b],
    } = await setup(2);
    a!.failInference(503);
    b!.failInference(503, 0);
    const answers = await Promise.all(Array.from({ length: 6 }, () => pool.send(work)));
    expect(answers.every((r) => r.replica === b!.url)).toBe(true);

    const rejected = await pool.send({ method: 'POST', path: '/bad', body: '{}' });
    expect(rejected.status).toBe(400);
  });

  it('every replica unreachable is BACKEND_UNAVAILABLE saying what happened to each, by place, not address', async () => {
    const {
      pool,
      servers: [a, b],
    } = await setup(2);
    await Promise.all([a!.down(), b!.down()]);
    const err = await pool.send(work).catch((e: unknown) => e);
    expect(codeOf(err)).toBe('BACKEND_UNAVAILABLE');
    const message = (err as Error).message;
    expect(message).toMatch(
      /server [12] of 2 is unreachable \(ECONNREFUSED\).*server [12] of 2 is unreachable/,
    );
    // The job's error reaches clients: server addresses stay with the operators.
    expect(message).not.toContain(a!.url);
    expect(message).not.toContain(b!.url);
  });

  it("an answer that is not JSON, or that breaks off mid-body, is the server's fault: the next replica answers, the circuit counts it", async () => {
    const {
      pool,
      servers: [a, b],
    } = await setup(2);
    for (const how of ['garbage', 'cut'] as const) {
      a!.spoil(how);
      const answers = await Promise.all(Array.from({ length: 6 }, () => pool.send(work)));
      expect(answers.every((r) => r.status === 200 && r.replica === b!.url)).toBe(true);
    }
    expect(pool.health()[0]!.circuit).toBe('open');

    // With no replica left that answers properly, the call is BACKEND_UNAVAILABLE naming what came.
    const {
      pool: alone,
      servers: [c],
    } = await setup(1);
    c!.spoil('garbage');
    const garbage = await alone.send(work).catch((e: unknown) => e);
    expect(codeOf(garbage)).toBe('BACKEND_UNAVAILABLE');
    expect((garbage as Error).message).toContain(
      'server 1 of 1 answered with a body that is not JSON',
    );
    c!.spoil('cut');
    const cut = await alone.send(work).catch((e: unknown) => e);
    expect(codeOf(cut)).toBe('BACKEND_UNAVAILABLE');
    expect((cut as Error).message).toContain('server 1 of 1 is unreachable');
  });

  it('a replica slower than the budget is BACKEND_TIMEOUT, within the budget', async () => {
    const {
      pool,
      servers: [a],
    } = await setup(1, 300);
    a!.slow(5_000);
    const started = Date.now();
    const err = await pool.send(work).catch((e: unknown) => e);
    expect(codeOf(err)).toBe('BACKEND_TIMEOUT');
    expect(Date.now() - started).toBeLessThan(1_500);
  });

  it('opens a circuit after repeated failures, half-opens after the cool-down, closes on success', async () => {
    const {
      pool,
      servers: [a],
    } = await setup(1);
    const changes: string[] = [];
    pool.onChange(() => changes.push(pool.health()[0]!.circuit));
    a!.failInference(500);
    for (let i = 0; i < 3; i++) await pool.send(work).catch(() => undefined);
    expect(pool.health()[0]!.circuit).toBe('open');
    expect(pool.canServe()).toBe(false);

    // Open: refused here at once, without reaching the server.
    const before = a!.counts.inference;
    const err = await pool.send(work).catch((e: unknown) => e);
    expect(codeOf(err)).toBe('BACKEND_UNAVAILABLE');
    expect((err as Error).message).toContain('circuit is open');
    expect(a!.counts.inference).toBe(before);

    // The cool-down (500 ms) ends on the breaker's timer: wait for the change it reports.
    await eventually(() => (changes.includes('half_open') ? true : undefined));
    expect(pool.health()[0]!.circuit).toBe('half_open');
    a!.heal();
    expect((await pool.send(work)).status).toBe(200);
    expect(pool.health()[0]!.circuit).toBe('closed');
    expect(changes).toEqual(['open', 'half_open', 'closed']);
  });

  it('a replica that comes back up after a probe found it down starts with a closed circuit', async () => {
    const {
      pool,
      servers: [a],
    } = await setup(1);
    const check = (send: Parameters<Parameters<ReplicaPool['probe']>[0]>[0]) =>
      send({ method: 'GET', path: '/anything' });
    await a!.down();
    for (let i = 0; i < 3; i++) await pool.send(work).catch(() => undefined);
    expect(pool.health()[0]!.circuit).toBe('open');
    await pool.probe(check, 500);
    expect(pool.health()[0]).toMatchObject({ healthy: false, circuit: 'open' });

    // Back: the probe that sees it closes the circuit, with no request needed to try it.
    await a!.up();
    await pool.probe(check, 500);
    expect(pool.health()[0]).toMatchObject({ healthy: true, circuit: 'closed' });
    expect(pool.canServe()).toBe(true);

    // A probe that finds an already-up server leaves a circuit opened by failing requests alone.
    a!.failInference(500);
    for (let i = 0; i < 3; i++) await pool.send(work).catch(() => undefined);
    await pool.probe(check, 500);
    expect(pool.health()[0]).toMatchObject({ healthy: true, circuit: 'open' });
  });

  it('requests a server rejects (4xx) do not open its circuit', async () => {
    const { pool } = await setup(1);
    for (let i = 0; i < 6; i++) {
      expect((await pool.send({ method: 'POST', path: '/bad', body: '{}' })).status).toBe(400);
    }
    expect(pool.health()[0]!.circuit).toBe('closed');
  });

  it('probes mark replicas down and up; a down replica is tried only when none is up', async () => {
    const {
      pool,
      servers: [a, b],
    } = await setup(2);
    const check = (send: Parameters<Parameters<ReplicaPool['probe']>[0]>[0]) =>
      send({ method: 'GET', path: '/anything' });
    await a!.down();
    const results = await pool.probe(check, 500);
    expect(results.map((r) => r.ok)).toEqual([false, true]);
    expect(pool.health().map((r) => r.healthy)).toEqual([false, true]);
    expect(pool.health()[0]!.error).toContain('ECONNREFUSED');

    // The down replica is skipped, not tried and failed over.
    await a!.up();
    for (let i = 0; i < 4; i++) await pool.send(work);
    expect(a!.counts.inference).toBe(0);
    await pool.probe(check, 500);
    expect(pool.health().map((r) => r.healthy)).toEqual([true, true]);
    for (let i = 0; i < 4; i++) await pool.send(work);
    expect(a!.counts.inference).toBe(2);
    expect(b!.counts.inference).toBe(6);
  });
});
