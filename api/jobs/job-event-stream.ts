import { PassThrough, type Readable } from 'node:stream';
import { isFinalStatus, type JobResource } from '../../shared/jobs/job-resource.js';
import type { Logger } from '../../shared/logging/logger.js';
import type { JobWatcher } from './completion-waiter.js';

/**
 * The events of a job event stream: the job's status (`queued`, `processing`, `succeeded`,
 * `failed`, `canceled`), `moved` when it went on to another backend (fallback), and `reconnect`
 * when the connection ends before the job does (its lifetime is over, or the API is shutting down).
 */
export type JobEventName = JobResource['status'] | 'moved' | 'reconnect';

/** Why a stream asks its client to reconnect. */
export type ReconnectReason = 'max_duration' | 'shutting_down';

export interface JobEventStreamsDeps {
  /** The process's one job-event listener ({@link CompletionWaiter.watch}). */
  watch(jobId: string, watcher: JobWatcher): () => void;
  /** The job as GET /jobs/{id} answers it; with `owner`, another owner's job is not found. */
  read(jobId: string, owner: string): Promise<JobResource | undefined>;
}

export interface JobEventStreamsOptions {
  /**
   * How often an open stream sends a heartbeat comment (so proxies and load balancers keep it
   * open) and re-reads its job (so a missed queue event delays an event by this much at most).
   * @defaultValue 15000
   */
  heartbeatMs?: number;
  /**
   * Longest life of one connection; past it the stream asks its client to reconnect.
   * @defaultValue 1800000
   */
  maxStreamMs?: number;
  /**
   * The reconnection delay a stream gives its client (the SSE `retry` field).
   * @defaultValue 1000
   */
  retryMs?: number;
}

/** What opening a stream found. */
export type OpenedStream =
  /** No such job, or another owner's: 404, as GET /jobs/{id}. */
  | { kind: 'missing' }
  /** The job has ended and the client's Last-Event-ID is its last event: nothing more to send. */
  | { kind: 'seen' }
  | { kind: 'open'; body: Readable };

/**
 * Server-Sent Events for GET /jobs/{id}/events: the job's state at once, then each change, then
 * the end. Every event carries the whole job resource (as GET /jobs/{id} and webhooks do).
 *
 * Where the events come from, and why not a stream of their own: the job's transitions are already
 * written atomically by BullMQ (start, result, failure, removal), each with an entry in its queue's
 * event stream, which this process reads anyway with one QueueEvents per queue for sync requests
 * (the CompletionWaiter). A stream registers a watch there (a map entry, no Redis connection), and
 * on each event of its job re-reads the job and sends what changed. Per-job Redis streams would
 * add writes to every job's hot path (sync requests included) and could not carry the result: it
 * is written by BullMQ's own completion script, after the worker's last lifecycle step. The watch
 * is registered before the first read, so nothing can happen between the two unseen; a queue
 * event that is missed anyway (a reconnect of the listener, a trimmed event stream) is caught up by
 * the re-read at the next heartbeat.
 *
 * Event ids name the job's state: `<step>.<attempts>.<status>` while it runs (`step`: how many
 * backends it has been sent to), `<step>.<status>` once it has ended. Resuming with Last-Event-ID,
 * a client is sent the current state unless it is the one it names; a client whose id names the
 * job's end gets 204 (which also stops a browser's EventSource from reconnecting). States are sent,
 * not a log: a change that is over before it could be sent (a job that starts and finishes within
 * one read) folds into the next event.
 *
 * Everything is bounded: heartbeats every `heartbeatMs`, a connection's life by `maxStreamMs`, a
 * client that does not read loses intermediate states (the latest is sent when it drains) and is
 * cut off when it has not drained for two heartbeats; a closed connection lets go of its watch.
 */
export class JobEventStreams {
  private readonly streams = new Set<JobEventStream>();
  private readonly settings: Required<JobEventStreamsOptions>;
  /** Reads started in this turn of the event loop, by owner and job (see {@link readOnce}). */
  private readonly reading = new Map<string, Promise<JobResource | undefined>>();
  private readonly deps: JobEventStreamsDeps;
  private closing = false;

  constructor(deps: JobEventStreamsDeps, options: JobEventStreamsOptions = {}) {
    this.deps = { watch: deps.watch, read: (jobId, owner) => this.readOnce(deps, jobId, owner) };
    this.settings = {
      heartbeatMs: options.heartbeatMs ?? 15_000,
      maxStreamMs: options.maxStreamMs ?? 1_800_000,
      retryMs: options.retryMs ?? 1000,
    };
    for (const [name, value] of Object.entries(this.settings)) {
      if (!(value > 0)) throw new RangeError(`${name} must be positive`);
    }
  }

  /** Streams open now. */
  get size(): number {
    return this.streams.size;
  }

  /**
   * Opens the stream of a job the owner can see: its current state is the first event (unless
   * `lastEventId` names it). Read failures are thrown, before anything is sent.
   */
  async open(
    jobId: string,
    owner: string,
    lastEventId: string | undefined,
    log: Pick<Logger, 'warn'>,
  ): Promise<OpenedStream> {
    const stream = new JobEventStream({
      jobId,
      owner,
      deps: this.deps,
      settings: this.settings,
      log,
      lastEventId,
    });
    let job: JobResource | undefined;
    try {
      job = await this.deps.read(jobId, owner);
    } catch (err) {
      stream.discard();
      throw err;
    }
    if (!job) {
      stream.discard();
      return { kind: 'missing' };
    }
    if (isFinalStatus(job.status) && jobEventId(job) === lastEventId) {
      stream.discard();
      return { kind: 'seen' };
    }
    this.streams.add(stream);
    stream.body.once('close', () => this.streams.delete(stream));
    stream.start(job);
    if (this.closing) stream.reconnect('shutting_down');
    return { kind: 'open', body: stream.body };
  }

  /**
   * One read for every stream of the same job and owner that asks in the same turn: a queue event
   * tells all of a job's watchers at once, so ten clients of one job cost one read, not ten. Only
   * within the turn: a read that started before a change must not answer for it.
   */
  private readOnce(
    deps: JobEventStreamsDeps,
    jobId: string,
    owner: string,
  ): Promise<JobResource | undefined> {
    const key = `${owner}\n${jobId}`;
    let read = this.reading.get(key);
    if (!read) {
      read = deps.read(jobId, owner);
      this.reading.set(key, read);
      queueMicrotask(() => this.reading.delete(key));
    }
    return read;
  }

  /** Asks every open stream's client to reconnect (elsewhere) and ends it: the API is shutting down. */
  closeAll(): void {
    this.closing = true;
    for (const stream of [...this.streams]) stream.reconnect('shutting_down');
  }
}

/** The SSE id of the job's state (see {@link JobEventStreams}). */
export function jobEventId(job: JobResource): string {
  const step = job.route?.length ?? 1;
  return isFinalStatus(job.status)
    ? `${step}.${job.status}`
    : `${step}.${job.attempts}.${job.status}`;
}

/** The step (backends the job has been sent to) a Last-Event-ID names; 0 when it names none. */
function stepOf(eventId: string | undefined): number {
  const step = Number(eventId?.split('.')[0]);
  return Number.isSafeInteger(step) ? step : 0;
}

/** One SSE message (`data` is one line: JSON has no raw newlines). */
function frame(fields: { id?: string; event?: string; data?: string; retry?: number }): string {
  let text = '';
  if (fields.retry !== undefined) text += `retry: ${fields.retry}\n`;
  if (fields.id !== undefined) text += `id: ${fields.id}\n`;
  if (fields.event !== undefined) text += `event: ${fields.event}\n`;
  if (fields.data !== undefined) text += `data: ${fields.data}\n`;
  return `${text}\n`;
}

interface JobEventStreamOptions {
  jobId: string;
  owner: string;
  deps: JobEventStreamsDeps;
  settings: Required<JobEventStreamsOptions>;
  log: Pick<Logger, 'warn'>;
  /** The client's `Last-Event-ID`: the state it has already. */
  lastEventId: string | undefined;
}

/** One open stream: its body, its watch, its timers. */
class JobEventStream {
  readonly body = new PassThrough();
  private readonly unwatch: () => void;
  private lastId: string | undefined;
  private lastStep: number;
  private started = false;
  private ended = false;
  private reading = false;
  /** A change was heard while it could not be read or sent: read again when possible. */
  private dirty = false;
  /** The body's buffer is full: nothing is written until it drains. */
  private blocked = false;
  /** Heartbeats that found the body still blocked. */
  private stalledBeats = 0;
  private heartbeat: NodeJS.Timeout | undefined;
  private lifetime: NodeJS.Timeout | undefined;

  private readonly jobId: string;
  private readonly owner: string;
  private readonly deps: JobEventStreamsDeps;
  private readonly settings: Required<JobEventStreamsOptions>;
  private readonly log: Pick<Logger, 'warn'>;

  constructor({ jobId, owner, deps, settings, log, lastEventId }: JobEventStreamOptions) {
    this.jobId = jobId;
    this.owner = owner;
    this.deps = deps;
    this.settings = settings;
    this.log = log;
    this.lastId = lastEventId;
    this.lastStep = stepOf(lastEventId);
    // Before the first read: a change between the read and the watch cannot go unheard.
    this.unwatch = deps.watch(jobId, () => this.changed());
    // Ended by the stream itself, or destroyed by Fastify when the client goes away.
    this.body.once('close', () => this.cleanUp());
  }

  /** Sends the job's current state (unless the client has it) and starts the timers. */
  start(job: JobResource): void {
    this.started = true;
    this.write(frame({ retry: this.settings.retryMs }));
    this.send(job);
    if (this.ended) return;
    this.heartbeat = setInterval(() => this.beat(), this.settings.heartbeatMs);
    this.lifetime = setTimeout(() => this.reconnect('max_duration'), this.settings.maxStreamMs);
    if (this.dirty) this.changed();
  }

  /** Never opened (404, 204, a failed read): lets go of the watch. */
  discard(): void {
    this.ended = true;
    this.unwatch();
    this.body.destroy();
  }

  /** Ends the stream before its job ends: the client comes back with its Last-Event-ID. */
  reconnect(reason: ReconnectReason): void {
    if (this.ended) return;
    this.write(
      frame({
        event: 'reconnect',
        data: JSON.stringify({ reason, retry_ms: this.settings.retryMs }),
      }),
    );
    this.finish();
  }

  /** A queue event of the job was heard (or a heartbeat asks): read it and send what changed. */
  private changed(): void {
    if (this.ended) return;
    if (!this.started || this.reading || this.blocked) {
      this.dirty = true;
      return;
    }
    void this.refresh();
  }

  private async refresh(): Promise<void> {
    this.reading = true;
    try {
      do {
        this.dirty = false;
        const job = await this.deps.read(this.jobId, this.owner);
        if (this.ended) return;
        // Expired (or deleted) while watched: there is nothing more to tell.
        if (!job) return this.finish();
        this.send(job);
      } while (this.dirty && !this.blocked && !this.ended);
    } catch (err) {
      // Redis away: the next heartbeat reads again.
      this.log.warn({ jobId: this.jobId, err: String(err) }, 'job event stream: read failed');
    } finally {
      this.reading = false;
    }
  }

  private send(job: JobResource): void {
    const id = jobEventId(job);
    if (id === this.lastId) return;
    const step = job.route?.length ?? 1;
    const final = isFinalStatus(job.status);
    const event: JobEventName =
      !final && this.lastStep > 0 && step > this.lastStep ? 'moved' : job.status;
    this.write(frame({ id, event, data: JSON.stringify(job) }));
    this.lastId = id;
    this.lastStep = step;
    if (final) this.finish();
  }

  private beat(): void {
    if (this.blocked) {
      // Not read for two heartbeats: a client (or proxy) that is gone without closing.
      if (++this.stalledBeats >= 2) this.body.destroy();
      return;
    }
    this.write(': heartbeat\n\n');
    this.changed();
  }

  private write(text: string): void {
    if (this.body.write(text) || this.blocked) return;
    this.blocked = true;
    this.body.once('drain', () => {
      this.blocked = false;
      this.stalledBeats = 0;
      if (this.dirty) this.changed();
    });
  }

  /** Ends the body once what is written has gone; a client that never reads it is cut off. */
  private finish(): void {
    if (this.ended) return;
    this.ended = true;
    this.stopTimers();
    this.unwatch();
    this.body.end();
    if (this.blocked) {
      const cutOff = setTimeout(() => this.body.destroy(), 2 * this.settings.heartbeatMs);
      cutOff.unref();
      this.body.once('close', () => clearTimeout(cutOff));
    }
  }

  private cleanUp(): void {
    this.ended = true;
    this.stopTimers();
    this.unwatch();
  }

  private stopTimers(): void {
    clearInterval(this.heartbeat);
    clearTimeout(this.lifetime);
  }
}
