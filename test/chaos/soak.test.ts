import { mkdir, writeFile } from 'node:fs/promises';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { renderTextLine } from '../fixtures/images.js';
import { ChaosStack } from './support/chaos-stack.js';
import { countScenario, formatTable, type JobOutcome, settleJobs } from './support/ledger.js';
import { type MemorySample, ResourceSampler, slopePerMinute } from './support/resource-sampler.js';
import { Traffic } from './support/traffic.js';

/** `npm run test:chaos` soaks for 5 minutes; CI runs a shorter soak (CHAOS_SOAK_SECONDS). */
const SOAK_SECONDS = Number(process.env.CHAOS_SOAK_SECONDS ?? 300);
const SAMPLE_EVERY_MS = 5000;
/** Samples before this are the warm-up (JIT, pools, caches filling): not part of the trend. */
const WARM_UP_MS = Math.min(60_000, (SOAK_SECONDS * 1000) / 3);
/** Growth accepted per process, in MB per minute, after the warm-up. */
const RSS_SLOPE_MB_PER_MIN = 10;
const HEAP_SLOPE_MB_PER_MIN = 5;
/**
 * Redis holds each job for JOB_RETENTION_SECONDS (60 here) after it ends, so its memory climbs for
 * that long at a steady rate and then stays level: its trend is judged on soaks long enough to show
 * the level part (from 4 minutes), after twice the retention.
 */
const REDIS_SLOPE_MB_PER_MIN = 2;
const RETENTION_SECONDS = 60;
/** How often the jobs accepted since are read back (well within their retention). */
const SETTLE_EVERY_MS = 10_000;

let chaos: ChaosStack;
let image: Buffer;

beforeAll(async () => {
  image = await renderTextLine();
  chaos = await ChaosStack.start({
    env: { JOB_RETENTION_SECONDS: String(RETENTION_SECONDS), JOB_RETENTION_COUNT: '1000' },
  });
});

afterAll(async () => {
  await chaos?.stop();
});

it(`soak: mixed traffic at a steady rate for ${SOAK_SECONDS} s, no growth, no errors, p99 stable`, async () => {
  const metricsUrl = (line: string) => (JSON.parse(line) as { url: string }).url;
  const sampled = [
    {
      name: 'api',
      process: chaos.stack.api,
      metricsUrl: `${chaos.baseUrl}/metrics`,
      headers: chaos.headers,
    },
    ...(await Promise.all(
      chaos.stack.workers.map(async (worker, i) => ({
        name: `worker-${i + 1}`,
        process: worker,
        metricsUrl: metricsUrl(await worker.waitForLog(/"worker metrics listening"/)),
      })),
    )),
  ];
  const sampler = new ResourceSampler(sampled, () => chaos.redis.usedMemory());
  const path = '/chaos/soak';
  const traffic = new Traffic({
    baseUrl: chaos.baseUrl,
    headers: chaos.headers,
    model: 'text_orientation',
    image,
    concurrency: 4,
    asyncShare: 0.5,
    webhookUrl: chaos.receiver.url(path),
    patienceMs: 15_000,
    pauseMs: 50,
  });
  const started = Date.now();
  // Jobs are read back as the soak goes: each is kept only JOB_RETENTION_SECONDS after it ends.
  const outcomes = new Map<string, JobOutcome>();
  const settleNew = async (timeoutMs: number) => {
    const pending = traffic.requests
      .flatMap((r) => [...r.jobIds])
      .filter((id) => !outcomes.has(id));
    const read = await settleJobs(chaos.baseUrl, chaos.headers, pending, timeoutMs);
    for (const [id, outcome] of read) outcomes.set(id, outcome);
  };
  sampler.start(SAMPLE_EVERY_MS);
  try {
    while (Date.now() - started < SOAK_SECONDS * 1000) {
      await new Promise((r) => setTimeout(r, SETTLE_EVERY_MS));
      await settleNew(SETTLE_EVERY_MS);
    }
  } finally {
    sampler.stop();
    await traffic.stop();
  }
  await settleNew(RETENTION_SECONDS * 1000);

  const accepted = traffic.requests.flatMap((r) => [...r.jobIds]);
  const row = countScenario({
    scenario: `soak ${SOAK_SECONDS} s`,
    requests: traffic.requests,
    outcomes,
    runs: chaos.runs(accepted),
    webhooks: chaos.receiver.on(path),
  });

  const afterWarmUp = <T extends { at: number }>(samples: T[]) =>
    samples.filter((s) => s.at - started >= WARM_UP_MS);
  const trends = Object.fromEntries(
    Object.entries(sampler.trace.processes).map(([name, samples]) => [
      name,
      trend(afterWarmUp(samples)),
    ]),
  );
  const redisSamples = sampler.trace.redis.filter(
    (s) => s.at - started >= 2 * RETENTION_SECONDS * 1000,
  );
  const redisSlope = slopePerMinute(redisSamples, (s) => s.usedMb);
  const halves = p99ByHalf(traffic, started);

  console.log(`\n${formatTable([row])}`);
  console.log('memory after warm-up (MB, MB/min):', trends);
  console.log(
    `redis used_memory slope after ${2 * RETENTION_SECONDS} s: ${redisSlope.toFixed(2)} MB/min`,
  );
  console.log(`p99 first half ${halves[0]} ms, second half ${halves[1]} ms`);
  await mkdir('test-output', { recursive: true });
  await writeFile(
    'test-output/chaos-soak.json',
    `${JSON.stringify({ seconds: SOAK_SECONDS, row, trends, redisSlope, p99ByHalf: halves, samples: sampler.trace }, null, 2)}\n`,
  );

  expect(row.accepted).toBeGreaterThan(SOAK_SECONDS);
  expect(row.failed).toEqual({});
  expect(row.refused).toEqual({});
  expect([row.lost, row.duplicated, row.rerun, row.webhookFaults]).toEqual([0, 0, 0, 0]);
  for (const [name, t] of Object.entries(trends)) {
    expect(t.rssSlope, `${name} RSS MB/min`).toBeLessThan(RSS_SLOPE_MB_PER_MIN);
    expect(t.heapSlope, `${name} heap MB/min`).toBeLessThan(HEAP_SLOPE_MB_PER_MIN);
  }
  if (redisSamples.length >= 6) expect(redisSlope).toBeLessThan(REDIS_SLOPE_MB_PER_MIN);
  expect(halves[1]).toBeLessThan(halves[0] * 2 + 50);
});

function trend(samples: MemorySample[]) {
  return {
    samples: samples.length,
    rssMb: Math.round(samples.at(-1)?.rssMb ?? 0),
    rssSlope: Number(slopePerMinute(samples, (s) => s.rssMb).toFixed(2)),
    heapSlope: Number(slopePerMinute(samples, (s) => s.heapMb).toFixed(2)),
  };
}

/** p99 of accepted requests' times, for those sent in the first and in the second half. */
function p99ByHalf(traffic: Traffic, started: number): [number, number] {
  const middle = started + (SOAK_SECONDS * 1000) / 2;
  const p99 = (times: number[]) => {
    const sorted = times.sort((a, b) => a - b);
    return sorted[Math.max(0, Math.ceil(sorted.length * 0.99) - 1)] ?? 0;
  };
  const accepted = traffic.requests.filter((r) => r.jobIds.size > 0 && r.tries[0]);
  return [
    p99(accepted.filter((r) => r.tries[0]!.at < middle).map((r) => r.ms)),
    p99(accepted.filter((r) => r.tries[0]!.at >= middle).map((r) => r.ms)),
  ];
}
