import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AiGatewayClient, type Job } from '../../client/index.js';
import { renderTextLine } from '../fixtures/images.js';
import { imageForm } from '../support/http.js';
import { eventually } from '../support/inference-stack.js';
import type { ServiceProcess } from '../support/processes.js';
import { parsePrometheusText, sampleValue } from '../support/prometheus-text.js';
import { sharedServices } from '../support/shared-services.js';
import { type Stack, startStack } from '../support/stack.js';

describe('deadlines: a job not started in time is not run', () => {
  const services = sharedServices();
  let stack: Stack;
  let client: AiGatewayClient;
  let image: Buffer;

  beforeAll(async () => {
    stack = await startStack(services, {
      env: {
        // Tests here freeze a worker with SIGSTOP; the API counts it gone 3 heartbeats after its last
        // report. A 3 s heartbeat leaves at least 6 s for a frozen worker's requests on a busy host.
        WORKER_HEARTBEAT_MS: '3000',
      },
    });
    client = new AiGatewayClient({ baseUrl: stack.baseUrl });
    image = await renderTextLine('Deadline');
  });
  afterAll(async () => {
    for (const worker of stack?.workers ?? []) worker.signal('SIGCONT');
    await stack?.stop();
  });

  /**
   * The inputs a worker has run through the model so far, from its own /metrics: counted when the
   * backend call returns, so final once the jobs it ran have finished.
   */
  const inputsRun = async (worker: ServiceProcess): Promise<number> => {
    const url = worker.logs().find((l) => l.msg === 'worker metrics listening')?.url as string;
    const samples = parsePrometheusText(await (await fetch(url)).text());
    return sampleValue(samples, 'ai_gateway_batch_size_sum', { model: 'text_orientation' });
  };

  const post = (headers: Record<string, string>, fields: Record<string, string> = {}) =>
    fetch(`${stack.baseUrl}/jobs`, {
      method: 'POST',
      headers,
      body: imageForm(image, { model: 'text_orientation', ...fields }),
    });

  it('fails DEADLINE_EXCEEDED without running the model when the backlog held it past its deadline', async () => {
    const worker = stack.workers[0]!;
    const before = await inputsRun(worker);
    worker.signal('SIGSTOP');
    let late: Job[];
    let onTime: Job;
    try {
      late = await Promise.all([
        post({ 'cancel-after': '1s' }).then((r) => r.json() as Promise<Job>),
        post({}, { deadline: '0.8' }).then((r) => r.json() as Promise<Job>),
        post({}, { deadline: new Date(Date.now() + 1000).toISOString() }).then(
          (r) => r.json() as Promise<Job>,
        ),
      ]);
      onTime = await client.submit('text_orientation', image, { deadline: 60 });
      for (const job of late)
        expect(job).toMatchObject({ status: 'queued', deadline: expect.any(String) });
      const latest = Math.max(...late.map((job) => Date.parse(job.deadline!)));
      await eventually(() => (Date.now() > latest ? true : undefined), 10_000, 'the deadlines');
    } finally {
      worker.signal('SIGCONT');
    }

    for (const job of late) {
      const done = await client.wait(job.id);
      expect(done).toMatchObject({
        status: 'failed',
        result: null,
        error: { code: 'DEADLINE_EXCEEDED' },
      });
    }
    expect((await client.wait(onTime!.id)).status).toBe('succeeded');
    // Of the four, the model ran only the one on time.
    expect((await inputsRun(worker)) - before).toBe(1);
  });

  it('a sync wait that runs out is not a deadline: the job completes and stays retrievable', async () => {
    const worker = stack.workers[0]!;
    worker.signal('SIGSTOP');
    let response: Response;
    try {
      response = await fetch(`${stack.baseUrl}/predict/text_orientation`, {
        method: 'POST',
        headers: { prefer: 'wait=1' },
        body: imageForm(image),
      });
    } finally {
      worker.signal('SIGCONT');
    }
    expect(response.status).toBe(202);
    expect(response.headers.get('preference-applied')).toBe('wait=1');
    const job = (await response.json()) as Job;
    expect(job.deadline).toBeNull();
    expect(response.headers.get('location')).toBe(`/jobs/${job.id}`);
    expect((await client.wait(job.id)).status).toBe('succeeded');
  });

  it('refuses a deadline in the past, two deadlines, or one it cannot read', async () => {
    const cases: [Record<string, string>, Record<string, string>][] = [
      [{}, { deadline: '2001-01-01T00:00:00Z' }],
      [{ 'cancel-after': '5s' }, { deadline: '10' }],
      [{ 'cancel-after': 'soon' }, {}],
      [{}, { deadline: 'tomorrow' }],
    ];
    for (const [headers, fields] of cases) {
      const response = await post(headers, fields);
      expect(response.status, JSON.stringify([headers, fields])).toBe(400);
      expect(((await response.json()) as { code: string }).code).toBe('VALIDATION_FAILED');
    }
  });
});
