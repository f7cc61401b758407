import type { QueueName } from '../../shared/queues/index.js';

/** What BullMQ's completion events carry: a completed job's return value, parsed. */
interface EventArgs {
  jobId: string;
  returnvalue?: unknown;
}

/** The part of BullMQ's QueueEvents the waiter listens to. */
export interface CompletionEvents {
  on(event: 'completed' | 'failed', listener: (args: EventArgs) => void): unknown;
  off(event: 'completed' | 'failed', listener: (args: EventArgs) => void): unknown;
}

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
 * Lets many requests wait for their jobs with one listener per queue per process: a map of (queue,
 * job id) to waiters, settled by that queue's events, with a periodic reconciliation against the
 * job state so a missed event only delays an answer. Register the waiter before the job is added,
 * so its completion cannot slip between the two.
 */
export class CompletionWaiter {
  /** By queue and job id: a job moved to another queue keeps its id, and finishes in each. */
  private readonly waiters = new Map<string, Set<Waiter>>();
  private readonly reconcileIntervalMs: number;
  private readonly listeners = new Map<
    QueueName,
    { completed: (args: EventArgs) => void; failed: (args: EventArgs) => void }
  >();
  private timer: NodeJS.Timeout | undefined;
  private reconciling = false;
  private closed = false;

  constructor(private readonly options: CompletionWaiterOptions) {
    this.reconcileIntervalMs = options.reconcileIntervalMs ?? 1000;
    if (this.reconcileIntervalMs <= 0) throw new RangeError('reconcileIntervalMs must be positive');
    for (const [queue, events] of options.events) {
      const listener = {
        completed: ({ jobId, returnvalue }: EventArgs) =>
          this.settle(waiterKey(queue, jobId), { via: 'completed', returnvalue }),
        failed: ({ jobId }: EventArgs) => this.settle(waiterKey(queue, jobId), { via: 'failed' }),
      };
      this.listeners.set(queue, listener);
      events.on('completed', listener.completed);
      events.on('failed', listener.failed);
    }
  }

  /** Number of requests waiting now. */
  get size(): number {
    let n = 0;
    for (const set of this.waiters.values()) n += set.size;
    return n;
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
      const listener = this.listeners.get(queue)!;
      events.off('completed', listener.completed);
      events.off('failed', listener.failed);
    }
    for (const key of [...this.waiters.keys()]) this.settle(key, undefined);
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
