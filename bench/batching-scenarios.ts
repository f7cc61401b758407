import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BenchProcess } from './bench-process.js';
import type { ClosedLoopContender, ContenderContext } from './contenders/contender.js';
import { gatewaySync } from './contenders/gateway-sync.contender.js';
import { type GatewayStack, startGatewayStack } from './gateway-stack.js';
import type { ImageName } from './images.js';
import { BENCH_MODEL } from './in-process-pipeline.js';
import type { WindowHooks } from './load-generator.js';
import { type BatchCounts, batchCountsWindow } from './worker-metrics.js';

/** The remote scenarios' model, by this name on the stand-in and in their registry. */
const REMOTE_MODEL = 'classifier';

export const SCENARIO_NAMES = ['onnx', 'tf-serving', 'tf-serving-b64', 'oip-v2'] as const;
/** The batching scenarios, as `--only` names them. */
export type ScenarioName = (typeof SCENARIO_NAMES)[number];

/** The two gateways of a scenario: batching on (the default limits) and off (`BATCH_MAX_SIZE=1`). */
export const MODES = ['on', 'off'] as const;
export type BatchMode = (typeof MODES)[number];

/** A gateway of a scenario, as the phase runner drives it. */
export interface BatchingContender extends ClosedLoopContender<BatchMode> {
  /** Reads the worker's batch histogram at the edges of a phase's window. */
  window(): WindowHooks & { counts(): BatchCounts };
}

/** What a scenario runs, before it is started. */
export interface ScenarioSpec {
  name: ScenarioName;
  description: string;
  model: string;
  image: ImageName;
  /** The concurrency levels its phases run at. */
  concurrency: number[];
}

/** A started scenario: its two gateways, each with its worker and, when remote, the stand-in. */
export interface Scenario extends ScenarioSpec {
  contenders: Record<BatchMode, BatchingContender>;
}

export interface ScenarioOptions {
  /** Closed-loop levels of the in-process ONNX scenario. @defaultValue [1, 8, 32, 64] */
  onnxConcurrency: number[];
  /** Levels of the remote scenarios: c=1 for latency, the highest for calls and throughput. */
  remoteConcurrency: number[];
  /** Model run per call on the stand-ins' one model instance (0: none). @defaultValue 100 */
  computeMs: number;
  /** Model run per input of a call's batch, on top of `computeMs`. @defaultValue 4 */
  computePerInputMs: number;
  /** Height and width of the remote classifier's input. @defaultValue 224 */
  inputSize: number;
}

const REMOTE_BACKENDS: Record<Exclude<ScenarioName, 'onnx'>, 'tensorflow' | 'onnx'> = {
  'tf-serving': 'tensorflow',
  'tf-serving-b64': 'tensorflow',
  'oip-v2': 'onnx',
};

export function scenarioSpecs(options: ScenarioOptions): ScenarioSpec[] {
  const compute =
    options.computeMs > 0 || options.computePerInputMs > 0
      ? `, model run ${options.computeMs} ms + ${options.computePerInputMs} ms per input, one instance`
      : ', no model run (its own CPU only)';
  const size = `${options.inputSize}x${options.inputSize}`;
  return [
    {
      name: 'onnx',
      description: `in-process ONNX Runtime, ${BENCH_MODEL}`,
      model: BENCH_MODEL,
      image: 'text-line',
      concurrency: options.onnxConcurrency,
    },
    {
      name: 'tf-serving',
      description: `TF Serving stand-in (REST, row tensors), ${REMOTE_MODEL} ${size} NHWC${compute}`,
      model: REMOTE_MODEL,
      image: 'photo',
      concurrency: options.remoteConcurrency,
    },
    {
      name: 'tf-serving-b64',
      description: `TF Serving stand-in (REST, {"b64": JPEG} instances the server decodes), ${REMOTE_MODEL} ${size}${compute}`,
      model: REMOTE_MODEL,
      image: 'photo',
      concurrency: options.remoteConcurrency,
    },
    {
      name: 'oip-v2',
      description: `Open Inference Protocol stand-in (FP32, the binary tensor extension offered), ${REMOTE_MODEL} ${size} NCHW${compute}`,
      model: REMOTE_MODEL,
      image: 'photo',
      concurrency: options.remoteConcurrency,
    },
  ];
}

/**
 * The registry of the remote scenarios: the stand-in's classifier, `size` x `size` RGB scaled to
 * [0, 1], stretched, its graph ending in its own softmax. Written to a temp folder `teardown`
 * removes.
 */
function writeRemoteRegistry(
  backend: 'tensorflow' | 'onnx',
  size: number,
  encoding: 'tensor' | 'b64',
  ctx: ContenderContext,
): { MODELS_CONFIG: string; MODEL_REPOSITORY: string } {
  const dir = mkdtempSync(join(tmpdir(), 'ai-gateway-bench-models-'));
  ctx.teardown.add(`registry folder ${dir}`, () => rmSync(dir, { recursive: true, force: true }));
  const registry = join(dir, 'models.json');
  const layout = backend === 'tensorflow' ? 'NHWC' : 'NCHW';
  writeFileSync(
    registry,
    JSON.stringify({
      models: {
        [REMOTE_MODEL]: {
          task: 'classification',
          backends: { [backend]: encoding === 'b64' ? { encoding } : {} },
          input: { width: size, height: size, layout, scale: 1 / 255, resize: 'stretch' },
          labels: ['red', 'green', 'blue'],
          postprocess: { activation: 'none', top_k: 3 },
        },
      },
    }),
  );
  // A remote backend reads no model files; the folder only has to exist.
  return { MODELS_CONFIG: registry, MODEL_REPOSITORY: dir };
}

async function startStandIn(
  spec: ScenarioSpec,
  options: ScenarioOptions,
  ctx: ContenderContext,
): Promise<string> {
  const protocol = spec.name === 'oip-v2' ? 'oip' : 'tf';
  const standIn = BenchProcess.start(
    `stand-in-${spec.name}`,
    [
      'bench/stand-in-process.ts',
      '--protocol',
      protocol,
      '--model',
      REMOTE_MODEL,
      '--size',
      String(options.inputSize),
      '--compute-ms',
      String(options.computeMs),
      '--compute-per-input-ms',
      String(options.computePerInputMs),
      '--tf-input',
      encodingOf(spec.name),
    ],
    { logDir: ctx.logDir },
  );
  ctx.teardown.add(`${spec.name} stand-in process`, () => standIn.stop());
  const [, port] = await standIn.waitForLine(/stand-in listening on (\d+)/);
  return `http://127.0.0.1:${port}`;
}

/** What the worker sends: preprocessed tensors, or the JPEG for a signature that decodes it. */
function encodingOf(name: ScenarioName): 'tensor' | 'b64' {
  return name === 'tf-serving-b64' ? 'b64' : 'tensor';
}

function contender(mode: BatchMode, stack: GatewayStack): BatchingContender {
  return {
    ...gatewaySync(stack),
    name: mode,
    window: () => batchCountsWindow(stack.metricsUrl, stack.model),
  };
}

/**
 * Starts a scenario's processes: for a remote one its stand-in (its own process, loopback) and a
 * registry naming the stand-in's model; then the two gateways side by side, each an API and a
 * worker of the scenario's backend on its own Redis prefix, batching at the registry's defaults or
 * off. Everything goes into `ctx.teardown`.
 */
export async function startScenario(
  spec: ScenarioSpec,
  options: ScenarioOptions,
  ctx: ContenderContext,
): Promise<Scenario> {
  let backend: 'onnx' | 'tensorflow' = 'onnx';
  let env: Record<string, string> = {};
  if (spec.name !== 'onnx') {
    backend = REMOTE_BACKENDS[spec.name];
    const url = await startStandIn(spec, options, ctx);
    env = {
      ...writeRemoteRegistry(backend, options.inputSize, encodingOf(spec.name), ctx),
      ...(backend === 'tensorflow' ? { TENSORFLOW_SERVING_URL: url } : { ONNX_RUNTIME_URL: url }),
    };
  }
  const start = (mode: BatchMode) =>
    startGatewayStack(ctx, {
      name: `batching-${spec.name}-${mode}`,
      backend,
      model: spec.model,
      env: mode === 'off' ? { ...env, BATCH_MAX_SIZE: '1' } : env,
    });
  const [on, off] = await Promise.all([start('on'), start('off')]);
  return { ...spec, contenders: { on: contender('on', on), off: contender('off', off) } };
}
