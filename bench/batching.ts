/**
 * The batching benchmark: what dynamic batching in the workers does to the gateway, measured as
 * gateway sync `POST /predict/<model>` through real API and worker processes, batching on (the
 * registry's default limits) next to batching off (`BATCH_MAX_SIZE=1`), side by side:
 *
 *   onnx        in-process ONNX Runtime, text_orientation, the text-line crop; c = 1, 8, 32, 64
 *   tf-serving  a `tensorflow` worker calling the TF Serving stand-in (its own process, loopback),
 *               a 224x224 NHWC classifier (`--input-size`) as row `instances`, the 640x480 photo;
 *               c = 1 and 64
 *   tf-serving-b64  the same with a signature that takes image bytes: the worker sends the JPEG
 *               as `{"b64": ...}`, the server decodes and resizes it (how TF Serving's REST API
 *               is usually fed images: float tensors as JSON text cost both sides per value)
 *   oip-v2      an `onnx` worker with ONNX_RUNTIME_URL calling the Open Inference Protocol
 *               stand-in, the same classifier NCHW; c = 1 and 64
 *
 * Each scenario starts its stand-in and its two gateways (each an API and a worker, a Redis prefix
 * of its own), primes both, then runs its rounds: every phase of round 1, then round 2, ..., the
 * order of on and off alternating. Per phase: req/s, p50/p99, backend calls and the jobs they
 * carried (the worker's `ai_gateway_batch_size` histogram, read from its /metrics at the window's
 * edges), jobs per call, the `batch` Server-Timing stage, CPU ms per request by process. Ratios and
 * targets (issue 10) are taken within each round, then the median. Then the scenario's processes
 * stop, so the next one has the machine to itself.
 *
 *   npm run bench:batching                                # 4 s per phase, 3 rounds (~7 minutes)
 *   npm run bench:batching -- --seconds 1 --rounds 1      # a quick check
 *   npm run bench:batching -- --only tf-serving,oip-v2 --compute-ms 0 --compute-per-input-ms 0
 *   npm run bench:batching -- --publish                   # also copy the JSON to docs/benchmarks/
 *
 * The stand-ins model a server whose model runs on an accelerator that the worker keeps busy, the
 * case batching for a remote server is for: each call holds its one model instance for
 * `--compute-ms` (default 100) plus `--compute-per-input-ms` (default 4) per input of its batch, so
 * a batch of 8 takes 132 ms where 8 calls take 832 ms (a cost mostly per call, as on a GPU; BentoML
 * fits the same a + b·N). One worker on the 2-core build machine prepares some 15-40 photos a
 * second, so a server faster than ~25 ms a call is never the bottleneck there and batching has
 * nothing to win; in production it is many workers that keep one accelerator busy. The stand-ins'
 * own CPU (HTTP, JSON, a trivial ONNX graph) comes on top, on the gateway's cores. 0 and 0: no
 * model run, only that CPU (a cost per input, where batching cannot pay).
 *
 * Writes bench/results/batching.json and the processes' logs to bench/results/logs/. Needs Redis
 * (REDIS_URL, default redis://127.0.0.1:6379); deletes its keys and stops its processes at the end,
 * on failure and on Ctrl-C.
 */
import { cpus } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { loadConfig } from '../shared/config/config.js';
import {
  BATCHING_LEGEND,
  type BatchingPhase,
  batchingMedians,
  batchingProgressLine,
  batchingTable,
  batchingTargetLines,
  evaluateBatchingTargets,
} from './batching-report.js';
import {
  type BatchMode,
  SCENARIO_NAMES,
  type Scenario,
  type ScenarioName,
  type ScenarioOptions,
  type ScenarioSpec,
  scenarioSpecs,
  startScenario,
} from './batching-scenarios.js';
import { integer, levels, names, positive } from './bench-options.js';
import type { ContenderContext } from './contenders/contender.js';
import { type BenchImage, type ImageName, loadBenchImage, UniqueJpegs } from './images.js';
import { writeJsonReport } from './outputs.js';
import { runBenchmark } from './own-process.js';
import { type PhaseSettings, runPhase } from './phase-runner.js';
import { StatsProbe } from './process-stats.js';
import { Teardown } from './teardown.js';

interface BatchingOptions extends ScenarioOptions {
  /** Measured seconds per phase. @defaultValue 4 */
  seconds: number;
  /** Interleaved rounds per scenario; figures are medians over them. @defaultValue 3 */
  rounds: number;
  /** @defaultValue every scenario */
  only: ScenarioName[];
  /** @defaultValue 'bench/results' */
  out: string;
  /** Copy the JSON to docs/benchmarks/. @defaultValue false */
  publish: boolean;
}

const USAGE = `usage: npm run bench:batching -- [options]
  --seconds N            measured seconds per phase (default 4; plus a warm-up of N/4 s, at most 1 s)
  --rounds N             interleaved rounds per scenario, medians reported (default 3)
  --only LIST            ${SCENARIO_NAMES.join(',')} (default: all)
  --concurrency LIST     levels of the onnx scenario (default 1,8,32,64)
  --remote-concurrency LIST  levels of the remote scenarios (default 1,64)
  --compute-ms N         model run per call on the stand-ins' one model instance (default 100)
  --compute-per-input-ms N  and per input of the call's batch (default 4)
  --input-size N         height and width of the remote classifier's input (default 224)
  --out DIR              results folder (default bench/results)
  --publish              also copy the JSON to docs/benchmarks/
  -h, --help             this text`;

function parseOptions(args: string[]): BatchingOptions | 'help' {
  const { values } = parseArgs({
    args,
    options: {
      seconds: { type: 'string', default: '4' },
      rounds: { type: 'string', default: '3' },
      only: { type: 'string', default: SCENARIO_NAMES.join(',') },
      concurrency: { type: 'string', default: '1,8,32,64' },
      'remote-concurrency': { type: 'string', default: '1,64' },
      'compute-ms': { type: 'string', default: '100' },
      'compute-per-input-ms': { type: 'string', default: '4' },
      'input-size': { type: 'string', default: '224' },
      out: { type: 'string', default: 'bench/results' },
      publish: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) return 'help';
  const computeMs = Number(values['compute-ms']);
  if (!(computeMs >= 0)) throw new Error(`--compute-ms takes a number >= 0, got ${computeMs}`);
  const computePerInputMs = Number(values['compute-per-input-ms']);
  if (!(computePerInputMs >= 0)) {
    throw new Error(`--compute-per-input-ms takes a number >= 0, got ${computePerInputMs}`);
  }
  return {
    seconds: positive('seconds', values.seconds),
    rounds: integer('rounds', values.rounds),
    only: names('only', values.only, SCENARIO_NAMES),
    onnxConcurrency: levels('concurrency', values.concurrency),
    remoteConcurrency: levels('remote-concurrency', values['remote-concurrency']),
    computeMs,
    computePerInputMs,
    inputSize: integer('input-size', values['input-size']),
    out: values.out,
    publish: values.publish,
  };
}

/** Round r starts with batching off when r is even, so neither mode always goes first. */
function modesOf(round: number): BatchMode[] {
  return round % 2 === 1 ? ['on', 'off'] : ['off', 'on'];
}

async function measure(
  scenario: Scenario,
  image: BenchImage,
  phase: { round: number; mode: BatchMode; concurrency: number },
  deps: { probe: StatsProbe; uniques: UniqueJpegs; settings: PhaseSettings },
): Promise<BatchingPhase> {
  const contender = scenario.contenders[phase.mode];
  const window = contender.window();
  const result = await runPhase(
    { round: phase.round, image, contender, concurrency: phase.concurrency },
    { ...deps, window },
  );
  const { backendCalls, jobs } = window.counts();
  return {
    scenario: scenario.name,
    ...result,
    backendCalls,
    jobs,
    ...(backendCalls > 0 ? { meanBatchSize: jobs / backendCalls } : {}),
  };
}

/** Starts one scenario, primes it, runs its rounds, stops its processes. */
async function runScenario(
  spec: ScenarioSpec,
  options: BatchingOptions,
  images: Record<ImageName, BenchImage>,
  deps: { probe: StatsProbe; context: ContenderContext },
): Promise<BatchingPhase[]> {
  const teardown = new Teardown();
  deps.context.teardown.add(`${spec.name} scenario`, () => teardown.run());
  console.log(`\n${spec.name}: ${spec.description}; starting its processes`);
  const scenario = await startScenario(spec, options, { ...deps.context, teardown });
  const image = images[spec.image];
  const uniques = new UniqueJpegs();
  const high = Math.max(...spec.concurrency);
  // JIT, sharp's and ONNX Runtime's first runs, connection pools: not recorded.
  const priming = { seconds: Math.min(2, options.seconds / 2), asyncJobs: 0, asyncConcurrency: 1 };
  for (const mode of modesOf(1)) {
    await measure(
      scenario,
      image,
      { round: 0, mode, concurrency: high },
      {
        probe: deps.probe,
        uniques,
        settings: priming,
      },
    );
  }
  const settings = { seconds: options.seconds, asyncJobs: 0, asyncConcurrency: 1 };
  const phases: BatchingPhase[] = [];
  for (let round = 1; round <= options.rounds; round++) {
    for (const mode of modesOf(round)) {
      for (const concurrency of spec.concurrency) {
        const phase = await measure(
          scenario,
          image,
          { round, mode, concurrency },
          {
            probe: deps.probe,
            uniques,
            settings,
          },
        );
        phases.push(phase);
        console.log(batchingProgressLine(phase, options.rounds));
      }
    }
  }
  await teardown.run();
  return phases;
}

async function main(teardown: Teardown): Promise<void> {
  const parsed = parseOptions(process.argv.slice(2));
  if (parsed === 'help') {
    console.log(USAGE);
    return;
  }
  const options = parsed;
  const config = loadConfig(process.env);
  const stats = new Redis(config.redis.url);
  teardown.add('stats Redis connection', () => void stats.disconnect());
  const redisVersion = /^redis_version:(\S+)/m.exec(await stats.info('server'))?.[1] ?? '?';
  const specs = scenarioSpecs(options).filter((s) => options.only.includes(s.name));
  const images = {
    photo: await loadBenchImage('photo'),
    'text-line': await loadBenchImage('text-line'),
  };
  const date = new Date();
  const cores = cpus().length;
  console.log(
    `ai-gateway batching benchmark: ${cores} cores (${cpus()[0]?.model ?? '?'}), Node ` +
      `${process.version}, Redis ${redisVersion}; ${options.seconds} s per phase, ` +
      `${options.rounds} round(s)\n${specs
        .map((s) => `  ${s.name}: ${s.description}; ${images[s.image].description}`)
        .join('\n')}`,
  );
  const probe = new StatsProbe(stats);
  const context = { config, logDir: join(options.out, 'logs'), teardown };
  const phases: BatchingPhase[] = [];
  for (const spec of specs) {
    phases.push(...(await runScenario(spec, options, images, { probe, context })));
  }

  const medians = batchingMedians(phases);
  const targets = evaluateBatchingTargets(phases, specs);
  console.log(`\nbatching on vs off (medians of ${options.rounds} round(s))\n`);
  console.log(batchingTable(specs, medians, phases));
  console.log(`\n${BATCHING_LEGEND}`);
  console.log(
    '\ntargets (issue 10; value and limit within each round, then the median; failed requests fail a target):',
  );
  console.log(batchingTargetLines(targets));

  const report = {
    date: date.toISOString(),
    node: process.version,
    cores,
    cpu: cpus()[0]?.model,
    redis: redisVersion,
    options,
    scenarios: specs.map((s) => ({
      ...s,
      image: images[s.image].description,
    })),
    phases,
    medians,
    targets,
  };
  const written = writeJsonReport({
    out: options.out,
    name: 'batching',
    report,
    publish: options.publish,
  });
  console.log(`\nwrote ${written.join(', ')}`);
}

await runBenchmark(fileURLToPath(import.meta.url), main);
