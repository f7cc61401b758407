/**
 * Two API processes and a worker behind a real nginx, run from deploy/nginx/nginx.conf.template
 * with this test's ports: requests spread over both instances; one instance killed with SIGKILL
 * mid-run loses no accepted job.
 *
 * Without nginx (Debian's `nginx` package) the test is skipped with a message, except under
 * CI=true, where it fails: .ci/run installs nginx, so a missing one is a broken CI.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderTextLine } from '../fixtures/images.js';
import { imageForm, type JobBody, pollJob } from '../support/http.js';
import { NGINX, NGINX_INSTALL_HINT, type RunningNginx, startNginx } from '../support/nginx.js';
import { freePort, type ServiceProcess, startApi } from '../support/processes.js';
import { parsePrometheusText, sampleValue } from '../support/prometheus-text.js';
import { rawRequest } from '../support/raw-http.js';
import { sharedServices } from '../support/shared-services.js';
import { type Stack, startStack } from '../support/stack.js';

const LISTENING = /Server listening at http:\/\/127\.0\.0\.1:(\d+)/;
const MODEL = 'text_orientation';
const inCi = process.env.CI === 'true';

if (!NGINX && !inCi) console.warn(`load balancer test SKIPPED: ${NGINX_INSTALL_HINT}`);

describe.skipIf(!NGINX && !inCi)('API instances behind nginx', () => {
  const services = sharedServices();
  let stack: Stack;
  let second: ServiceProcess;
  let nginx: RunningNginx;
  let instances: string[];
  let image: Buffer;

  beforeAll(async () => {
    if (!NGINX) throw new Error(`CI=true but ${NGINX_INSTALL_HINT}`);
    // nginx is on loopback: the instances believe its X-Forwarded-For.
    stack = await startStack(services, { env: { TRUST_PROXY: 'loopback' } });
    second = startApi({ ...stack.env, PORT: '0' });
    const port = LISTENING.exec(await second.waitForLog(LISTENING))![1]!;
    instances = [stack.baseUrl, `http://127.0.0.1:${port}`];
    nginx = await startNginx({
      listenPort: await freePort(),
      apiServers: instances.map((url) => new URL(url).host),
    });
    image = await renderTextLine();
  });

  afterAll(async () => {
    await nginx?.stop();
    await second?.stop();
    await stack?.stop();
  });

  /** Requests each instance has answered on a route, from its own /metrics. */
  async function answered(route: string): Promise<number[]> {
    return Promise.all(
      instances.map(async (url) => {
        const samples = parsePrometheusText(await (await fetch(`${url}/metrics`)).text());
        return sampleValue(samples, 'ai_gateway_total', { method: 'POST', route, status: '200' });
      }),
    );
  }

  it('spreads requests over both instances, with the caller request id passed through', async () => {
    for (let i = 0; i < 8; i++) {
      const requestId = `lb-${randomUUID()}`;
      const response = await fetch(`${nginx.url}/predict/${MODEL}`, {
        method: 'POST',
        body: imageForm(image),
        headers: { 'x-request-id': requestId },
      });
      expect(response.status).toBe(200);
      expect(response.headers.get('x-request-id')).toBe(requestId);
      expect(((await response.json()) as JobBody).request_id).toBe(requestId);
    }
    const counts = await answered('/predict/:model');
    expect(counts.reduce((a, b) => a + b)).toBe(8);
    for (const count of counts) expect(count).toBeGreaterThanOrEqual(2);
  });

  it('answers an upload far over the limit with a problem body, at nginx', async () => {
    const { port } = new URL(nginx.url);
    const answer = await rawRequest(Number(port), [
      `POST /predict/${MODEL} HTTP/1.1\r\nHost: lb\r\nContent-Type: image/png\r\n` +
        `Content-Length: ${64 * 1024 * 1024}\r\nX-Request-Id: lb-too-large\r\n\r\n`,
    ]);
    expect(answer.status).toBe(413);
    expect(answer.headers['content-type']).toBe('application/problem+json');
    expect(JSON.parse(answer.body)).toMatchObject({
      status: 413,
      code: 'PAYLOAD_TOO_LARGE',
      request_id: 'lb-too-large',
    });
  });

  it('loses no accepted job when an instance is killed with SIGKILL mid-run', {
    timeout: 180_000,
  }, async () => {
    const total = 24;
    const killAfter = 8;
    const accepted: { index: number; id: string; afterKill: boolean }[] = [];
    let killed = false;
    /** The answers that made a client send again, for the failure message. */
    const retried: string[] = [];

    /**
     * One submission as a careful client makes it: an Idempotency-Key, and the same request again
     * when the answer is lost (502: the instance died under it; nginx does not resend a POST), or
     * while the key is still held (409 IDEMPOTENCY_KEY_IN_USE, after Retry-After: a claim by the
     * dead instance lasts its lease, a minute). Every third one is a sync POST /predict (200, or 202
     * when its wait runs out).
     */
    async function submit(index: number): Promise<void> {
      const key = `lb-${randomUUID()}`;
      const url =
        index % 3 === 0 ? `${nginx.url}/predict/${MODEL}` : `${nginx.url}/jobs?model=${MODEL}`;
      const until = Date.now() + 90_000;
      while (Date.now() < until) {
        const response = await fetch(url, {
          method: 'POST',
          body: imageForm(image),
          headers: { 'idempotency-key': key },
        }).catch(() => undefined);
        const status = response?.status ?? 0;
        if (status === 200 || status === 202) {
          const job = (await response!.json()) as JobBody;
          accepted.push({ index, id: job.id, afterKill: killed });
          if (accepted.length === killAfter && !killed) {
            killed = true;
            stack.api.signal('SIGKILL');
          }
          return;
        }
        const body = (await response?.json().catch(() => undefined)) as
          | { code?: string }
          | undefined;
        retried.push(`${status} ${body?.code ?? ''}`.trim());
        const retryable = status >= 500 || status === 0 || body?.code === 'IDEMPOTENCY_KEY_IN_USE';
        if (!retryable) throw new Error(`submission ${index}: ${status} ${body?.code}`);
        const retryAfter = Number(response?.headers.get('retry-after') ?? 0.2);
        await new Promise((r) => setTimeout(r, retryAfter * 1000));
      }
      throw new Error(`submission ${index} never accepted`);
    }

    // Four clients at a time, so requests are in flight on the instance when it dies.
    const queue = Array.from({ length: total }, (_, i) => i);
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        for (let index = queue.shift(); index !== undefined; index = queue.shift()) {
          await submit(index);
        }
      }),
    );
    expect(killed).toBe(true);
    expect(await stack.api.exited).toEqual({ code: null, signal: 'SIGKILL' });

    // Every submission was accepted once: one job per Idempotency-Key, none lost.
    expect(accepted.map((a) => a.index).sort((a, b) => a - b)).toEqual(
      Array.from({ length: total }, (_, i) => i),
    );
    expect(new Set(accepted.map((a) => a.id)).size, `retried after: ${retried}`).toBe(total);
    expect(accepted.filter((a) => a.afterKill).length).toBeGreaterThan(0);
    const finished = await Promise.all(accepted.map((a) => pollJob(nginx.url, a.id, 60_000)));
    expect(finished.map((job) => job.status)).toEqual(Array(total).fill('succeeded'));
  });
});
