import type { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { JobWatcher } from '../../api/jobs/completion-waiter.js';
import { JobEventStreams, jobEventId } from '../../api/jobs/job-event-stream.js';
import type { JobResource } from '../../shared/jobs/job-resource.js';
import { QueueName } from '../../shared/queues/index.js';

const HEARTBEAT_MS = 1000;
const JOB = 'job-1';
const OWNER = 'acme';

/** A job as the reader would describe it, with only the fields the stream looks at set for real. */
function job(
  status: JobResource['status'],
  options: { backends?: string[]; attempts?: number; payload?: string } = {},
): JobResource {
  const backends = options.backends ?? ['onnx'];
  return {
    id: JOB,
    status,
    backend: backends.at(-1)!,
    attempts: options.attempts ?? 0,
    route: backends.map((backend) => ({ backend, at: '2026-01-01T00:00:00.000Z', error: null })),
    ...(options.payload ? { result: { task: 'raw', payload: options.payload } } : {}),
  } as unknown as JobResource;
}

/** The job's state as the stub reader answers it, and the watches the streams registered. */
class World {
  state: JobResource | undefined;
  failReads = false;
  reads = 0;
  readonly watchers = new Set<JobWatcher>();
  readonly log = { warn: vi.fn() };
  readonly streams = new JobEventStreams(
    {
      watch: (_jobId, watcher) => {
        this.watchers.add(watcher);
        return () => this.watchers.delete(watcher);
      },
      read: async (_jobId, owner) => {
        this.reads++;
        if (this.failReads) throw new Error('redis away');
        return owner === OWNER ? this.state : undefined;
      },
    },
    { heartbeatMs: HEARTBEAT_MS, maxStreamMs: 60_000, retryMs: 500 },
  );

  /** The job changes and its queue event is heard. */
  async change(state: JobResource): Promise<void> {
    this.state = state;
    for (const watcher of this.watchers) watcher('active', QueueName.InferenceOnnx);
    await flush();
  }

  async open(lastEventId?: string): Promise<Readable> {
    const opened = await this.streams.open(JOB, OWNER, lastEventId, this.log);
    if (opened.kind !== 'open') throw new Error(`not opened: ${opened.kind}`);
    return opened.body;
  }
}

/** Lets pending promise callbacks (a read, a write) run. */
async function flush(): Promise<void> {
  for (let i = 0; i < 5; i++) await Promise.resolve();
}

/** Everything the body holds now, as text. */
function drain(body: Readable): string {
  let text = '';
  for (let chunk = body.read(); chunk !== null; chunk = body.read()) text += chunk.toString();
  return text;
}

/** The events (name and id) in a stretch of stream text. */
function events(text: string): string[] {
  return [...text.matchAll(/id: (\S+)\nevent: (\S+)\n/g)].map(([, id, name]) => `${name} ${id}`);
}

let world: World;

beforeEach(() => {
  vi.useFakeTimers();
  world = new World();
});
afterEach(() => {
  vi.useRealTimers();
});

describe('JobEventStreams', () => {
  it('names a move to another backend `moved`, and ends after the final event', async () => {
    world.state = job('queued');
    const body = await world.open();
    await world.change(job('processing'));
    await world.change(job('queued', { backends: ['onnx', 'tensorflow'] }));
    await world.change(job('succeeded', { backends: ['onnx', 'tensorflow'], attempts: 1 }));
    expect(events(drain(body))).toEqual([
      'queued 1.0.queued',
      'processing 1.0.processing',
      'moved 2.0.queued',
      'succeeded 2.succeeded',
    ]);
    expect(body.readableEnded || body.readableLength === 0).toBe(true);
    expect(world.watchers.size).toBe(0);
  });

  it('sends nothing for a queue event that changed nothing the client sees', async () => {
    world.state = job('processing');
    const body = await world.open('1.0.processing');
    await world.change(job('processing'));
    expect(events(drain(body))).toEqual([]);
    await world.change(job('failed', { attempts: 3 }));
    expect(events(drain(body))).toEqual(['failed 1.failed']);
  });

  it('gives a client that does not read the latest state when it drains, not every one between', async () => {
    world.state = job('queued');
    const body = await world.open();
    const big = 'x'.repeat(20_000);
    // Past the body's buffer: the stream stops writing and remembers that something changed.
    await world.change(job('processing', { payload: big }));
    const buffered = body.readableLength;
    await world.change(job('queued', { attempts: 1, payload: big }));
    await world.change(job('processing', { attempts: 1, payload: big }));
    expect(body.readableLength).toBe(buffered);
    const first = drain(body);
    await flush();
    const rest = drain(body);
    expect(events(first + rest)).toEqual([
      'queued 1.0.queued',
      'processing 1.0.processing',
      'processing 1.1.processing',
    ]);
  });

  it('cuts off a client that has not read for two heartbeats, and lets go of its watch', async () => {
    world.state = job('queued');
    const body = await world.open();
    await world.change(job('processing', { payload: 'x'.repeat(20_000) }));
    expect(world.watchers.size).toBe(1);
    await vi.advanceTimersByTimeAsync(2 * HEARTBEAT_MS);
    expect(body.destroyed).toBe(true);
    await flush();
    expect(world.watchers.size).toBe(0);
    expect(world.streams.size).toBe(0);
  });

  it('re-reads the job at each heartbeat, so a missed queue event or a failed read only delays an event', async () => {
    world.state = job('queued');
    const body = await world.open();
    world.failReads = true;
    await world.change(job('processing'));
    expect(world.log.warn).toHaveBeenCalledTimes(1);
    world.failReads = false;
    // Changed without a queue event (one that was missed).
    world.state = job('succeeded', { attempts: 1 });
    await vi.advanceTimersByTimeAsync(HEARTBEAT_MS);
    const text = drain(body);
    expect(text).toContain(': heartbeat\n\n');
    expect(events(text)).toEqual(['queued 1.0.queued', 'succeeded 1.succeeded']);
  });

  it('asks every client to reconnect at shutdown, and any that opens after', async () => {
    world.state = job('queued');
    const body = await world.open();
    world.streams.closeAll();
    expect(drain(body)).toMatch(
      /event: reconnect\ndata: \{"reason":"shutting_down","retry_ms":500\}\n\n$/,
    );
    const late = await world.open();
    expect(drain(late)).toMatch(/id: 1\.0\.queued\n[\s\S]*event: reconnect\n/);
    await flush();
    expect(world.watchers.size).toBe(0);
  });

  it('reads a job once per queue event, however many of its streams are open', async () => {
    world.state = job('queued');
    const bodies = await Promise.all(Array.from({ length: 10 }, () => world.open()));
    const before = world.reads;
    await world.change(job('processing'));
    expect(world.reads - before).toBe(1);
    for (const body of bodies) {
      expect(events(drain(body))).toEqual(['queued 1.0.queued', 'processing 1.0.processing']);
    }
  });

  it('answers `seen` for a client that has the final event, and `missing` for another owner', async () => {
    world.state = job('canceled');
    expect(await world.streams.open(JOB, OWNER, jobEventId(world.state), world.log)).toEqual({
      kind: 'seen',
    });
    expect(await world.streams.open(JOB, 'globex', undefined, world.log)).toEqual({
      kind: 'missing',
    });
    await flush();
    expect(world.watchers.size).toBe(0);
  });
});
