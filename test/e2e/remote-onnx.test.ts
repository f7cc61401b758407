import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { solidPng } from '../fixtures/images.js';
import {
  type BackendModels,
  BLUE,
  OIP_MODELS,
  waitForHealth,
  writeBackendModels,
} from '../support/backend-models.js';
import { callsFor, predict } from '../support/http.js';
import { sharedServices } from '../support/shared-services.js';
import { type Stack, startStack } from '../support/stack.js';

const ADMIN_KEY = 'admin-key-0123456789abcdef';

describe('the onnx pool on remote Open Inference Protocol servers (ONNX_RUNTIME_URL)', () => {
  const services = sharedServices();
  let models: BackendModels;
  let stack: Stack;

  beforeAll(async () => {
    models = await writeBackendModels();
    stack = await startStack(services, {
      workers: 1,
      oipV2: { replicas: 2, models: OIP_MODELS },
      readyModels: ['colour_onnx'],
      adminKey: ADMIN_KEY,
      env: { ...models.env, HEALTH_CHECK_INTERVAL_MS: '300' },
    });
  });
  afterAll(async () => {
    await stack?.stop();
    await models?.remove();
  });

  it('serves the model from the servers, spread over both, not in-process', async () => {
    const blue = await solidPng({ r: BLUE[0], g: BLUE[1], b: BLUE[2] });
    const responses = await Promise.all(
      Array.from({ length: 20 }, () => predict(stack.baseUrl, 'colour_onnx', blue)),
    );
    expect(responses.map((r) => r.status)).toEqual(Array(20).fill(200));
    for (const { body } of responses) {
      expect(body).toMatchObject({ backend: 'onnx', version: '1' });
      expect(body.result?.predictions?.[0]?.label).toBe('blue');
    }
    const served = stack.oipV2.map((s) => s.server.counts.inference);
    // Every job went to the servers once (in fewer calls than jobs where the worker batched
    // them), and each server took a fair share of the calls.
    expect(served[0]! + served[1]!).toBe(callsFor(responses));
    expect(Math.min(...served)).toBeGreaterThanOrEqual(Math.floor((served[0]! + served[1]!) / 4));
  });

  it('reports the servers in /health, and a model the servers lack as unavailable', async () => {
    // The servers' URLs are the admin's to read.
    const health = await waitForHealth(stack.baseUrl, (h) => h.backends.onnx?.up === true, {
      adminKey: ADMIN_KEY,
    });
    expect(health.backends.onnx?.replicas?.map((r) => r.url)).toEqual(
      stack.oipV2.map((s) => s.url),
    );
    const both = (await (await fetch(`${stack.baseUrl}/models/colour_both`)).json()) as {
      status: string;
      reason: string;
    };
    expect(both.status).toBe('unavailable');
    expect(both.reason).toContain('the server has no ready model "colour_both"');
  });
});
