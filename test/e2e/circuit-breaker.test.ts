import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { solidPng } from '../fixtures/images.js';
import {
  type BackendModels,
  RED,
  TF_MODELS,
  waitForHealth,
  writeBackendModels,
} from '../support/backend-models.js';
import { predict } from '../support/http.js';
import { sharedServices } from '../support/shared-services.js';
import { type Stack, startStack } from '../support/stack.js';

const circuitOf = (h: Awaited<ReturnType<typeof waitForHealth>>) =>
  h.backends.tensorflow?.replicas?.[0]?.circuit;

/** The API's ai_gateway_circuit_state gauge for the TF replica (0 closed, 1 half-open, 2 open). */
async function circuitGauge(baseUrl: string, replica: string): Promise<number | undefined> {
  const text = await (await fetch(`${baseUrl}/metrics`)).text();
  const line = text
    .split('\n')
    .find((l) => l.startsWith('ai_gateway_circuit_state{') && l.includes(`replica="${replica}"`));
  return line === undefined ? undefined : Number(line.split(' ').at(-1));
}

describe('circuit breaker on a TF Serving replica, as /health shows it', () => {
  const services = sharedServices();
  let models: BackendModels;
  let stack: Stack;
  let red: Buffer;

  beforeAll(async () => {
    models = await writeBackendModels();
    stack = await startStack(services, {
      workers: 1,
      tensorflowWorkers: 1,
      tfServing: { replicas: 1, models: TF_MODELS },
      readyModels: ['colour_tf', 'colour_both', 'colour_onnx'],
      env: {
        ...models.env,
        HEALTH_CHECK_INTERVAL_MS: '300',
        BREAKER_VOLUME_THRESHOLD: '3',
        BREAKER_ERROR_THRESHOLD: '50',
        BREAKER_RESET_MS: '3000',
        JOB_ATTEMPTS: '3',
        JOB_BACKOFF_MS: '50',
      },
    });
    red = await solidPng({ r: RED[0], g: RED[1], b: RED[2] });
  });
  afterAll(async () => {
    await stack?.stop();
    await models?.remove();
  });

  it('healthy -> open (degraded) -> half-open -> closed (healthy)', async () => {
    const tf = stack.tfServing[0]!;
    const healthy = await waitForHealth(stack.baseUrl, (h) => h.status === 'healthy');
    expect(healthy.services.backends).toEqual({ onnx: true, tensorflow: true });
    expect(circuitOf(healthy)).toBe('closed');

    // TF Serving answers, but every predict fails with 500: three failures open the circuit.
    tf.server.failInference(500);
    const failed = await predict(stack.baseUrl, 'colour_tf', red);
    expect(failed.status).toBe(503);
    expect(failed.body.code).toBe('BACKEND_UNAVAILABLE');
    const open = await waitForHealth(stack.baseUrl, (h) => circuitOf(h) === 'open');
    expect(open.status).toBe('degraded');
    expect(await circuitGauge(stack.baseUrl, tf.url)).toBe(2);
    expect(open.services.backends).toEqual({ onnx: true, tensorflow: false });

    // Open: the API does not send TF Serving anything. A TF-only model is refused at once, a model
    // on both backends goes to onnx.
    const calls = tf.server.counts.inference;
    const refused = await predict(stack.baseUrl, 'colour_tf', red);
    expect(refused.status).toBe(503);
    expect(refused.headers.get('retry-after')).toMatch(/^\d+$/);
    expect(refused.body.code).toBe('BACKEND_UNAVAILABLE');
    expect(refused.body.detail).toContain('circuit open');
    expect(refused.body.job_id).toBeUndefined();
    const both = await predict(stack.baseUrl, 'colour_both', red);
    expect(both.status).toBe(200);
    expect(both.body.backend).toBe('onnx');
    expect(tf.server.counts.inference).toBe(calls);

    // After the cool-down the circuit lets one trial through; the server has recovered.
    tf.server.heal();
    const halfOpen = await waitForHealth(stack.baseUrl, (h) => circuitOf(h) === 'half_open');
    expect(halfOpen.status).toBe('degraded');
    expect(halfOpen.services.backends.tensorflow).toBe(true);
    const trial = await predict(stack.baseUrl, 'colour_tf', red);
    expect(trial.status).toBe(200);
    expect(trial.body.backend).toBe('tensorflow');

    const closed = await waitForHealth(stack.baseUrl, (h) => h.status === 'healthy');
    expect(circuitOf(closed)).toBe('closed');
    expect(await circuitGauge(stack.baseUrl, tf.url)).toBe(0);
    expect(closed.services.backends).toEqual({ onnx: true, tensorflow: true });

    const circuitLines = stack.workers
      .flatMap((w) => w.logs())
      .filter((l) => String(l.msg).startsWith('circuit '))
      .map((l) => l.msg);
    expect(circuitLines).toEqual(['circuit open', 'circuit half-open', 'circuit closed']);
  });
});
