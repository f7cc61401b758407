/**
 * The predict benchmark suite: what a queued, stored, authenticated request through the gateway
 * costs next to what the same work costs without it. Every contender runs side by side in one
 * run, on the same Redis and cores, for two images (a 640x480 noisy photo, ~220 KB, and a ~400x48
 * text-line crop, ~6 KB), model text_orientation:
 *
 *   direct   the worker's pipeline (sharp, ONNX Runtime, top-k) in this process: the physical floor
 *   plain    the same pipeline behind one Fastify + multipart route in its own process, no queue
 *   floor    BullMQ alone: add a job shaped like the gateway's, wait for a no-op worker to finish it
 *   gateway  the gateway as `npm start` runs it (API + ONNX worker processes, production mode),
 *            sync POST /predict/text_orientation
 *   cached   the same gateway, sync, the same image every time: answered by the result cache
 *   async    the same gateway, a burst of POST /jobs: accepted jobs/s, then the queue is drained
 *
 * HTTP contenders get Node's fetch + FormData from closed loops (N clients, each sending its next
 * request when its answer arrives) at each concurrency level, after a warm-up. Every request sends
 * distinct bytes (a JPEG comment with a counter), so content-addressed storage writes every one and
 * the result cache never answers (but for `cached`, which sends the same bytes on purpose).
 * Per phase: req/s, p50/p99, errors, CPU ms per request of each process (server, worker, Redis,
 * this client), RSS, Redis commands per request. Rounds are interleaved (round 1 runs every phase,
 * then round 2, ...; the contender order rotates) and every figure is the median over the rounds;
 * ratios and targets are taken within each round, then the median. The machine is shared: compare
 * ratios, not absolute numbers.
 *
 *   npm run bench                                  # 4 s per phase, 3 rounds (~10 minutes)
 *   npm run bench -- --seconds 1 --rounds 1        # a quick check
 *   npm run bench -- --only plain,gateway --images photo --concurrency 1,64
 *   npm run bench -- --publish                     # also copy chart + JSON to docs/benchmarks/
 *
 * Prints a table per image, the ratios and the targets; writes bench/results/predict.json, .svg
 * and .png, and the child processes' logs to bench/results/logs/. Needs Redis (REDIS_URL, default
 * redis://127.0.0.1:6379); uses its own key prefixes and deletes them at the end, on failure and
 * on Ctrl-C, as it stops its processes and removes its temp folder.
 */
import { cpus } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { loadConfig } from '../shared/config/config.js';
import { type BenchOptions, parseBenchOptions, USAGE } from './bench-options.js';
import { throughputLatencyChart } from './chart.js';
import { startBullmqFloor } from './contenders/bullmq-floor.contender.js';
import type { Contender, ContenderContext, ContenderName } from './contenders/contender.js';
import { startDirectPipeline } from './contenders/direct-pipeline.contender.js';
import { gatewayAsync } from './contenders/gateway-async.contender.js';
import { gatewayCached } from './contenders/gateway-cached.contender.js';
import { gatewaySync } from './contenders/gateway-sync.contender.js';
import { startPlainServer } from './contenders/plain-server.contender.js';
import { startGatewayStack } from './gateway-stack.js';
import { type BenchImage, loadBenchImage, UniqueJpegs } from './images.js';
import { BENCH_MODEL } from './in-process-pipeline.js';
import { writeOutputs } from './outputs.js';
import { runBenchmark } from './own-process.js';
import { type PhaseResult, runPhase } from './phase-runner.js';
import { StatsProbe } from './process-stats.js';
import {
  errorSummary,
  imageTable,
  progressLine,
  ratioTable,
  redisBackground,
  serverTimingBreakdown,
  TABLE_LEGEND,
  targetLines,
} from './report.js';
import { medianPhases, ratiosByRound } from './summary.js';
import { evaluateTargets } from './targets.js';
import type { Teardown } from './teardown.js';

/** Starts the chosen contenders, in the order of `--only`'s list; one gateway for sync and async. */
async function startContenders(options: BenchOptions, ctx: ContenderContext): Promise<Contender[]> {
  const contenders: Contender[] = [];
  const wantsGateway = ['gateway', 'cached', 'async'].some((name) =>
    options.only.includes(name as ContenderName),
  );
  if (wantsGateway) console.log('starting the gateway (API + ONNX worker processes)');
  const stack = wantsGateway ? await startGatewayStack(ctx) : undefined;
  for (const name of options.only) {
    console.log(`starting ${name}`);
    if (name === 'direct') contenders.push(await startDirectPipeline(ctx));
    if (name === 'plain') contenders.push(await startPlainServer(ctx));
    if (name === 'floor') contenders.push(await startBullmqFloor(ctx));
    if (name === 'gateway') contenders.push(gatewaySync(stack!));
    if (name === 'cached') contenders.push(gatewayCached(stack!));
    if (name === 'async') contenders.push(gatewayAsync(stack!, ctx));
  }
  return contenders;
}

/** Round r starts r - 1 places further down the list, so no contender always goes first. */
function rotated<T>(items: readonly T[], by: number): T[] {
  const k = by % Math.max(1, items.length);
  return [...items.slice(k), ...items.slice(0, k)];
}

/**
 * Before round 1, every contender serves each image briefly, unrecorded, at the highest
 * concurrency: JIT, sharp's and ONNX Runtime's first runs, connection pools. Otherwise round 1's
 * first phases would measure start-up.
 */
async function prime(
  options: BenchOptions,
  images: readonly BenchImage[],
  contenders: readonly Contender[],
  probe: StatsProbe,
): Promise<void> {
  console.log('priming every contender (not recorded)');
  const settings = {
    seconds: Math.min(2, options.seconds / 2),
    asyncJobs: Math.min(options.asyncJobs, 2 * options.asyncConcurrency),
    asyncConcurrency: options.asyncConcurrency,
  };
  const uniques = new UniqueJpegs();
  for (const image of images) {
    for (const contender of contenders) {
      const concurrency =
        contender.load === 'burst' ? options.asyncConcurrency : Math.max(...options.concurrency);
      await runPhase({ round: 0, image, contender, concurrency }, { probe, uniques, settings });
    }
  }
}

async function runRounds(
  options: BenchOptions,
  images: readonly BenchImage[],
  contenders: readonly Contender[],
  probe: StatsProbe,
): Promise<{ round: number; order: string[]; phases: PhaseResult[] }[]> {
  const uniques = new UniqueJpegs();
  const rounds = [];
  for (let round = 1; round <= options.rounds; round++) {
    const order = rotated(contenders, round - 1);
    const phases: PhaseResult[] = [];
    for (const image of images) {
      for (const contender of order) {
        const levels =
          contender.load === 'burst' ? [options.asyncConcurrency] : options.concurrency;
        for (const concurrency of levels) {
          const phase = await runPhase(
            { round, image, contender, concurrency },
            { probe, uniques, settings: options },
          );
          phases.push(phase);
          console.log(progressLine(phase, options.rounds));
        }
      }
    }
    rounds.push({ round, order: order.map((c) => c.name), phases });
  }
  return rounds;
}

async function main(teardown: Teardown): Promise<void> {
  const parsed = parseBenchOptions(process.argv.slice(2));
  if (parsed === 'help') {
    console.log(USAGE);
    return;
  }
  const options = parsed;
  const config = loadConfig(process.env);
  const stats = new Redis(config.redis.url);
  teardown.add('stats Redis connection', () => void stats.disconnect());
  const redisVersion = /^redis_version:(\S+)/m.exec(await stats.info('server'))?.[1] ?? '?';
  const images = await Promise.all(options.images.map(loadBenchImage));
  const contenders = await startContenders(options, {
    config,
    logDir: join(options.out, 'logs'),
    teardown,
  });

  const date = new Date();
  const cores = cpus().length;
  console.log(
    `\nai-gateway predict benchmark: ${BENCH_MODEL}, ${cores} cores (${cpus()[0]?.model ?? '?'}), ` +
      `Node ${process.version}, Redis ${redisVersion}; ${options.seconds} s per phase, ` +
      `${options.rounds} round(s)\n${images.map((i) => `  ${i.name}: ${i.description}`).join('\n')}\n`,
  );
  const probe = new StatsProbe(stats);
  await prime(options, images, contenders, probe);
  const rounds = await runRounds(options, images, contenders, probe);

  const phases = rounds.flatMap((r) => r.phases);
  const medians = medianPhases(phases);
  const ratios = ratiosByRound(phases);
  const targets = evaluateTargets(phases, options.images, options.concurrency);
  for (const image of images) {
    console.log(`\n${image.name}: ${image.description} (medians of ${options.rounds} round(s))\n`);
    console.log(imageTable(image, medians));
    const ratioText = ratioTable(image, ratios);
    if (ratioText) console.log(`\n${ratioText}`);
    const breakdown = serverTimingBreakdown(image, medians);
    if (breakdown) console.log(`\n${breakdown}`);
  }
  console.log(`\n${TABLE_LEGEND}`);
  for (const line of [redisBackground(phases), errorSummary(phases)]) {
    if (line) console.log(line);
  }
  console.log(
    `\ntargets (median over rounds of each round's value / limit; failed requests fail a target):`,
  );
  console.log(targetLines(targets));

  const stamp = `${date.toISOString().slice(0, 16).replace('T', ' ')} UTC`;
  const svg = throughputLatencyChart({
    title: `ai-gateway: ${BENCH_MODEL} throughput vs p99 latency, ${stamp}, ${cores} cores`,
    subtitle: `median of ${options.rounds} interleaved round(s), ${options.seconds} s per phase; points: closed-loop concurrency c; same Redis and cores for all`,
    images,
    medians,
  });
  const report = {
    date: date.toISOString(),
    node: process.version,
    cores,
    cpu: cpus()[0]?.model,
    redis: redisVersion,
    model: BENCH_MODEL,
    options,
    images: images.map(({ jpeg, ...image }) => ({ ...image, bytes: jpeg.length })),
    rounds,
    medians,
    ratios,
    targets,
  };
  const written = await writeOutputs({ out: options.out, report, svg, publish: options.publish });
  console.log(`\nwrote ${written.join(', ')}`);
}

await runBenchmark(fileURLToPath(import.meta.url), main);
