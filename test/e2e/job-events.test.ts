import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import type { Queue } from 'bullmq';
import { createParser, type EventSourceMessage } from 'eventsource-parser';
import { Agent, fetch as undiciFetch } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AiGatewayClient, type Job } from '../../client/index.js';
import { QueueName } from '../../shared/queues/index.js';
import { renderTextLine } from '../fixtures/images.js';
import { eventually } from '../support/inference-stack.js';
import { pool } from '../support/pool.js';
import { parsePrometheusText, sampleValue } from '../support/prometheus-text.js';
import { sharedServices } from '../support/shared-services.js';
import { openQueue, type Stack, startStack } from '../support/stack.js';

const STREAMS = 1000;
const JOBS = 100;

/**
 * The Redis connections a process holds: its sockets (/proc/<pid>/fd) that are established TCP
 * connections to port 6379 (/proc/net/tcp, tcp6).
 */
function redisConnections(pid: number): number {
  const sockets = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const inode = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`))?.[1];
      if (inode) sockets.add(inode);
    } catch {
      // Closed while listed.
    }
  }
  let count = 0;
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const line of readFileSync(table, 'utf8').split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      const [remote, state, inode] = [fields[2], fields[3], fields[9]];
      if (remote?.endsWith(':18EB') && state === '01' && inode && sockets.has(inode)) count++;
    }
  }
  return count;
}

/** The process's resident memory, in MiB (/proc/<pid>/status). */
function rssMiB(pid: number): number {
  const kb = Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);
  return Math.round(kb / 102.4) / 10;
}

/** One open stream: its events as they arrive, and the end of the response. */
interface OpenStream {
  events: EventSourceMessage[];
  /** Resolves once the first event is in (the stream is open and watched). */
  opened: Promise<void>;
  ended: Promise<void>;
}

describe('job event streams against the real API and worker processes', () => {
  const services = sharedServices();
  let stack: Stack;
  let client: AiGatewayClient;
  let queue: Queue;
  let image: Buffer;
  // Enough sockets for every stream at once (undici's default pool has no cap, made explicit).
  const agent = new Agent({ connections: STREAMS + 10, keepAliveTimeout: 1000 });

  beforeAll(async () => {
    stack = await startStack(services, { env: { JOB_EVENTS_HEARTBEAT_MS: '5000' } });
    client = new AiGatewayClient({ baseUrl: stack.baseUrl });
    queue = openQueue(stack, QueueName.InferenceOnnx);
    image = await renderTextLine('Stream me');
  });
  afterAll(async () => {
    await queue?.resume();
    await queue?.close();
    await agent.close();
    await stack?.stop();
  });

  const openStreams = async () =>
    sampleValue(
      parsePrometheusText(await (await fetch(`${stack.baseUrl}/metrics`)).text()),
      'ai_gateway_job_event_streams',
    );

  function open(jobId: string): OpenStream {
    const events: EventSourceMessage[] = [];
    let opened!: () => void;
    const first = new Promise<void>((resolve) => {
      opened = resolve;
    });
    const ended = (async () => {
      const res = await undiciFetch(`${stack.baseUrl}/jobs/${jobId}/events`, {
        dispatcher: agent,
        signal: AbortSignal.timeout(120_000),
      });
      expect(res.status).toBe(200);
      const parser = createParser({
        onEvent: (event) => {
          events.push(event);
          opened();
        },
      });
      const decoder = new TextDecoder();
      for await (const chunk of res.body!) parser.feed(decoder.decode(chunk, { stream: true }));
    })();
    return { events, opened: Promise.race([first, ended]), ended };
  }

  it(`keeps ${STREAMS} streams open on one listener, ends each with its result, and keeps no watch after`, async () => {
    const pid = stack.api.pid!;
    // Paused, the queue holds every job: all streams are open at once before any job runs.
    await queue.pause();
    const jobs = await pool(
      Array.from({ length: JOBS }),
      10,
      async (): Promise<Job> => client.submit('text_orientation', image),
    );
    // Counted once jobs have been submitted: the API opens its connection for adding jobs at the
    // first one (AddConnection), which is not the streams' doing.
    const connectionsBefore = redisConnections(pid);
    const rssBefore = rssMiB(pid);
    expect(connectionsBefore).toBeGreaterThan(0);
    const streams = jobs.flatMap((job) =>
      Array.from({ length: STREAMS / JOBS }, () => ({ job, stream: open(job.id) })),
    );
    await Promise.all(streams.map(({ stream }) => stream.opened));
    for (const { job, stream } of streams) {
      expect(stream.events[0]).toMatchObject({ event: 'queued', id: '1.0.queued' });
      expect(JSON.parse(stream.events[0]!.data)).toMatchObject({ id: job.id, status: 'queued' });
    }
    expect(await openStreams()).toBe(STREAMS);
    const rssOpen = rssMiB(pid);
    // The streams use the listener the API already had: not one Redis connection more.
    expect(redisConnections(pid)).toBe(connectionsBefore);

    const started = Date.now();
    await queue.resume();
    await Promise.all(streams.map(({ stream }) => stream.ended));
    const drainedMs = Date.now() - started;
    for (const { job, stream } of streams) {
      const last = stream.events.at(-1)!;
      expect(last.event).toBe('succeeded');
      expect(JSON.parse(last.data)).toMatchObject({
        id: job.id,
        status: 'succeeded',
        result: { task: 'classification' },
      });
      for (const between of stream.events.slice(1, -1)) expect(between.event).toBe('processing');
    }
    await eventually(
      async () => (await openStreams()) === 0 || undefined,
      10_000,
      'every watch released',
    );
    expect(redisConnections(pid)).toBe(connectionsBefore);
    // Figures for the record, not asserts: resident memory is the process's, garbage and all.
    console.info(
      `${STREAMS} streams over ${JOBS} jobs: all ended ${drainedMs} ms after the queue resumed; ` +
        `API resident memory ${rssBefore} MiB before, ${rssOpen} MiB with them open`,
    );
  });

  it("is what the client's wait() follows: the finished job, without polling", async () => {
    await queue.pause();
    const job = await client.submit('text_orientation', image);
    // Polling would read the job queued, then pause a minute: past the wait.
    const waiting = client.wait(job.id, { timeoutMs: 30_000, initialDelayMs: 60_000 });
    await eventually(
      async () => (await openStreams()) === 1 || undefined,
      10_000,
      "the client's stream",
    );
    await queue.resume();
    expect(await waiting).toMatchObject({ id: job.id, status: 'succeeded' });
    await eventually(async () => (await openStreams()) === 0 || undefined, 10_000, 'stream closed');
  });
});
