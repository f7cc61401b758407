import type { QueueName } from '../../shared/queues/index.js';

/** What BullMQ's queue events carry: the job's id and, on completion, its return value, parsed. */
interface EventArgs {
  jobId: string;
  returnvalue?: unknown;
}

/**
 * The queue events that can change what a client sees of a job: it starts (`active`), ends
 * (`completed`, `failed`: also a job moved to another backend, or canceled while running), leaves
 * its queue (`removed`: a queued job canceled), or waits again (`waiting`, `delayed`: a retry, a
 * stalled job back in its queue).
 */
export const JOB_CHANGE_EVENTS = [
  'active',
  'completed',
  'failed',
  'removed',
  'waiting',
  'delayed',
] as const;
type QueueEvent = (typeof JOB_CHANGE_EVENTS)[number];

/** The part of BullMQ's QueueEvents the waiter listens to. */
export interface CompletionEvents {
  on(event: QueueEvent, listener: (args: EventArgs) => void): unknown;
  off(event: QueueEvent, listener: (args: EventArgs) => void): unknown;
}

/** Told that one of a watched job's queue events was heard (which one, in which queue). */
export type JobWatcher = (event: QueueEvent, queue: QueueName) => void;

/** How a job was found finished. */
export type Finished =
  /** Its `completed` event, with the worker's return value. */
  | { via: 'completed'; returnvalue: unknown }
  /** Its `failed` event (which a job moved to another backend also sends). */
  | { via: 'failed' }
  /** The reconciliation found it finished, or gone: no event was heard. */
  | { via: 'state' };

export interface CompletionWaiterOptions {
  /** One event source per queue: the process's only listener on that queue. */
  events: ReadonlyMap<QueueName, CompletionEvents>;
  /** Says, per job, whether it has finished (or no longer exists). */
  isFinished(queue: QueueName, jobIds: string[]): Promise<boolean[]>;
  /**
   * How often waiters that have not heard an event are checked against the job state. Events can be
   * missed (a reconnect, a trimmed event stream); this check bounds how late a waiter learns of it.
   * @defaultValue 1000
   */
  reconcileIntervalMs?: number;
  onError?(err: unknown): void;
}

interface Waiter {
  queue: QueueName;
  jobId: string;
  since: number;
  settle(finished: Finished | undefined): void;
}

/**
 * The process's one listener on its queues' job events (one QueueEvents per queue), shared by
 * every request that follows a job, however many there are:
 *
 * - {@link wait}: a sync request waits for its job to finish: a map of (queue, job id) to waiters,
 *   settled by that queue's events, with a periodic reconciliation against the job state so a
 *   missed event only delays an answer. Register the waiter before the job is added, so its
 *   completion cannot slip between the two.
 * - {@link watch}: an event stream (GET /jobs/{id}/events) hears every change of its job, in any
 *   queue, until it lets go; it reads the job itself (and reconciles on its own heartbeat).
 */
export class CompletionWaiter {
  /** By queue and job id: a job moved to another queue keeps its id, and finishes in each. */
  private readonly waiters = new Map<string, Set<Waiter>>();
  /** By job id alone: a watcher follows its job into whichever queue it moves to. */
  private readonly watchers = new Map<string, Set<JobWatcher>>();
  private readonly reconcileIntervalMs: number;
  private readonly listeners = new Map<QueueName, Map<QueueEvent, (args: EventArgs) => void>>();
  private timer: NodeJS.Timeout | undefined;
  private reconciling = false;
  private closed = false;

  constructor(private readonly options: CompletionWaiterOptions) {
    this.reconcileIntervalMs = options.reconcileIntervalMs ?? 1000;
    if (this.reconcileIntervalMs <= 0) throw new RangeError('reconcileIntervalMs must be positive');
    for (const [queue, events] of options.events) {
      const listeners = new Map<QueueEvent, (args: EventArgs) => void>();
      for (const event of JOB_CHANGE_EVENTS) {
        listeners.set(event, ({ jobId, returnvalue }: EventArgs) => {
          if (event === 'completed') {
            this.settle(waiterKey(queue, jobId), { via: 'completed', returnvalue });
          } else if (event === 'failed') {
            this.settle(waiterKey(queue, jobId), { via: 'failed' });
          }
          this.tell(jobId, event, queue);
        });
      }
      this.listeners.set(queue, listeners);
      for (const [event, listener] of listeners) events.on(event, listener);
    }
  }

  /** Number of requests waiting now. */
  get size(): number {
    let n = 0;
    for (const set of this.waiters.values()) n += set.size;
    return n;
  }

  /** Number of watches registered now (one per open event stream). */
  get watching(): number {
    let n = 0;
    for (const set of this.watchers.values()) n += set.size;
    return n;
  }

  /**
   * Calls `watcher` on every change event of the job, in whichever queue, until the returned
   * function is called (idempotent). Nothing is read: the watcher decides what a change means.
   */
  watch(jobId: string, watcher: JobWatcher): () => void {
    if (this.closed) return () => {};
    const set = this.watchers.get(jobId) ?? new Set<JobWatcher>();
    this.watchers.set(jobId, set);
    // A function of its own per registration: the same watcher registered twice is two watches.
    const registration: JobWatcher = (event, queue) => watcher(event, queue);
    set.add(registration);
    return () => {
      set.delete(registration);
      if (set.size === 0 && this.watchers.get(jobId) === set) this.watchers.delete(jobId);
    };
  }

  /**
   * Resolves how the job was found finished (completed, failed, or gone), or `undefined` when
   * `timeoutMs` passes or `signal` aborts first.
   */
  wait(
    queue: QueueName,
    jobId: string,
    timeoutMs: number,
    signal?: AbortSignal,
  ): Promise<Finished | undefined> {
    if (this.closed || signal?.aborted) return Promise.resolve(undefined);
    return new Promise<Finished | undefined>((resolve) => {
      const key = waiterKey(queue, jobId);
      const set = this.waiters.get(key) ?? new Set<Waiter>();
      this.waiters.set(key, set);
      const onAbort = () => waiter.settle(undefined);
      const timer = setTimeout(() => waiter.settle(undefined), timeoutMs);
      const waiter: Waiter = {
        queue,
        jobId,
        since: Date.now(),
        settle: (finished) => {
          clearTimeout(timer);
          signal?.removeEventListener('abort', onAbort);
          set.delete(waiter);
          if (set.size === 0 && this.waiters.get(key) === set) this.waiters.delete(key);
          resolve(finished);
        },
      };
      set.add(waiter);
      signal?.addEventListener('abort', onAbort, { once: true });
      this.schedule();
    });
  }

  /** Settles every waiter as not finished and stops listening. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.timer);
    for (const [queue, events] of this.options.events) {
      for (const [event, listener] of this.listeners.get(queue) ?? []) events.off(event, listener);
    }
    for (const key of [...this.waiters.keys()]) this.settle(key, undefined);
    this.watchers.clear();
  }

  private tell(jobId: string, event: QueueEvent, queue: QueueName): void {
    const set = this.watchers.get(jobId);
    if (!set) return;
    for (const watcher of [...set]) {
      try {
        watcher(event, queue);
      } catch (err) {
        this.options.onError?.(err);
      }
    }
  }

  private settle(key: string, finished: Finished | undefined): void {
    const set = this.waiters.get(key);
    if (!set) return;
    for (const waiter of [...set]) waiter.settle(finished);
  }

  private schedule(): void {
    if (this.timer || this.closed || this.waiters.size === 0) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.reconcile().finally(() => this.schedule());
    }, this.reconcileIntervalMs);
    this.timer.unref();
  }

  private async reconcile(): Promise<void> {
    if (this.reconciling) return;
    this.reconciling = true;
    try {
      const due = Date.now() - this.reconcileIntervalMs;
      const byQueue = new Map<QueueName, string[]>();
      for (const set of this.waiters.values()) {
        const first = set.values().next().value;
        if (!first || first.since > due) continue;
        const ids = byQueue.get(first.queue) ?? [];
        ids.push(first.jobId);
        byQueue.set(first.queue, ids);
      }
      await Promise.all(
        [...byQueue].map(async ([queue, ids]) => {
          const finished = await this.options.isFinished(queue, ids);
          ids.forEach((id, i) => {
            if (finished[i]) this.settle(waiterKey(queue, id), { via: 'state' });
          });
        }),
      );
    } catch (err) {
      this.options.onError?.(err);
    } finally {
      this.reconciling = false;
    }
  }
}

function waiterKey(queue: QueueName, jobId: string): string {
  return `${queue}/${jobId}`;
}
