/**
 * The models the end-to-end tests of TF Serving, remote ONNX Runtime and fallback use: a colour
 * classifier of known answers (NHWC, as TensorFlow lays images out), registered on TF Serving only,
 * on both backends, and on ONNX only, with the registry file and ONNX repository on disk.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { buildColourClassifier, writeModelRepository } from '../fixtures/onnx-models.js';
import type { TfStandInModel } from '../fixtures/tf-serving-stand-in.js';

export const COLOUR_LABELS = ['red', 'green', 'blue'];
export const RED: [number, number, number] = [240, 20, 20];
export const BLUE: [number, number, number] = [20, 20, 240];

const classifier = buildColourClassifier({ size: 8, layout: 'NHWC' });
const input = { width: 8, height: 8, layout: 'NHWC', scale: 1 / 255, resize: 'stretch' };
const entry = (backends: Record<string, unknown>) => ({
  task: 'classification',
  backends,
  input,
  labels: COLOUR_LABELS,
  postprocess: { activation: 'none' },
});

/** What the TF Serving stand-ins serve: the classifier as "colour", version 1. */
export const TF_MODELS: Record<string, TfStandInModel> = {
  colour: { versions: { '1': classifier } },
};

/** What the Open Inference Protocol stand-ins serve: the classifier as "colour_onnx", version 1. */
export const OIP_MODELS: Record<string, Record<string, Uint8Array>> = {
  colour_onnx: { '1': classifier },
};

export interface BackendModels {
  /** MODELS_CONFIG and MODEL_REPOSITORY for the stack. */
  env: { MODELS_CONFIG: string; MODEL_REPOSITORY: string };
  remove(): Promise<void>;
}

/**
 * Writes the registry and the ONNX repository to a temporary folder:
 * `colour_tf` (TF Serving only), `colour_both` (TF Serving first, then ONNX in-process),
 * `colour_onnx` (ONNX only).
 */
export async function writeBackendModels(): Promise<BackendModels> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ai-gateway-backends-'));
  const repository = path.join(dir, 'repository');
  await writeModelRepository(repository, {
    colour_both: { '1': classifier },
    colour_onnx: { '1': classifier },
  });
  const registry = path.join(dir, 'models.json');
  await writeFile(
    registry,
    JSON.stringify({
      models: {
        colour_tf: entry({ tensorflow: { name: 'colour' } }),
        colour_both: entry({ tensorflow: { name: 'colour' }, onnx: {} }),
        colour_onnx: entry({ onnx: {} }),
      },
    }),
  );
  return {
    env: { MODELS_CONFIG: registry, MODEL_REPOSITORY: repository },
    remove: () => rm(dir, { recursive: true, force: true }),
  };
}

interface HealthBody {
  status: string;
  services: { backends: Record<string, boolean> };
  backends: Record<
    string,
    {
      up: boolean;
      /** `url` only in the admin's view. */
      replicas?: { url?: string; healthy: boolean; circuit: string }[];
    }
  >;
}

/**
 * Polls GET /health until `check` accepts the body; returns it. With `adminKey`, the admin's view:
 * the servers' URLs and errors, the models' details.
 */
export async function waitForHealth(
  baseUrl: string,
  check: (body: HealthBody) => boolean,
  { timeoutMs = 20_000, adminKey }: { timeoutMs?: number; adminKey?: string } = {},
): Promise<HealthBody> {
  const until = Date.now() + timeoutMs;
  const headers: Record<string, string> = adminKey ? { authorization: `Bearer ${adminKey}` } : {};
  let last: HealthBody | undefined;
  while (Date.now() < until) {
    last = (await (await fetch(`${baseUrl}/health`, { headers })).json()) as HealthBody;
    if (check(last)) return last;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`/health did not get there within ${timeoutMs} ms: ${JSON.stringify(last)}`);
}
