import { createRequire } from 'node:module';
import { type ChainableCommander, Cluster } from 'ioredis';
import { type RedisClient, waitForRedis } from '../redis/redis.js';
import { SHARED_COMMANDS } from '../redis/redis-commands.js';

/** One of BullMQ's Lua scripts, as its module exports it. */
interface BullmqScript {
  name: string;
  content: string;
  keys: number;
}

const require = createRequire(import.meta.url);
/** BullMQ's scripts, from the module its own connections load them from (`loadCommands`). */
const bullmqScripts = require('bullmq/dist/cjs/scripts/index.js') as Record<string, BullmqScript>;
/** BullMQ names each script `<name>:<version>` on a connection, and calls it so. */
const { version: bullmqVersion } = require('bullmq/dist/cjs/version.js') as { version: string };

/** The scripts an add runs: BullMQ's three kinds of add (which one: its options decide). */
const BULLMQ_ADD_SCRIPTS = ['addStandardJob', 'addPrioritizedJob', 'addDelayedJob'] as const;

/** A MULTI that BullMQ's `Job.addJob` can queue its add on (it calls `runCommand`). */
export type AddTransaction = ChainableCommander & {
  runCommand(name: string, args: unknown[]): AddTransaction;
};

/**
 * A second connection to Redis, for the MULTIs that add jobs, with only the scripts those run
 * defined on it: BullMQ's adds and the fair scheduler's admission. ioredis copies every script
 * defined on a connection onto each pipeline or MULTI made from it (two properties a script); on
 * the connection BullMQ shares, with its 64 scripts and ours, making one MULTI cost about 0.2 ms of
 * CPU, a tenth of the API's time per submission. Opened at the first add, with the options of the
 * connection it duplicates (a command connection fails fast when Redis is away).
 */
export class AddConnection {
  private opening: Promise<RedisClient> | undefined;

  constructor(
    private readonly redis: RedisClient,
    /** How long the first add waits for the connection to be ready. */
    private readonly readyTimeoutMs = 5000,
  ) {}

  /**
   * A new MULTI on the connection, once it is ready. Refused while the connection it duplicates is
   * not ready: it goes with that one (whose commands fail fast then), not around it.
   */
  async multi(): Promise<AddTransaction> {
    if (this.redis.status !== 'ready') {
      throw new Error(`The Redis connection is ${this.redis.status}: no job is added`);
    }
    const client = await this.client();
    const transaction = client.multi() as AddTransaction;
    transaction.runCommand = (name, args) => {
      (transaction as unknown as Record<string, (args: unknown[]) => unknown>)[name]!(args);
      return transaction;
    };
    return transaction;
  }

  async close(): Promise<void> {
    const opening = this.opening;
    this.opening = undefined;
    const client = await opening?.catch(() => undefined);
    client?.disconnect();
  }

  private client(): Promise<RedisClient> {
    this.opening ??= this.open().catch((err: unknown) => {
      // The next add tries a new connection.
      this.opening = undefined;
      throw err;
    });
    return this.opening;
  }

  private async open(): Promise<RedisClient> {
    const client: RedisClient =
      this.redis instanceof Cluster ? this.redis.duplicate() : this.redis.duplicate();
    // A failure reaches the add that meets it, as its rejection.
    client.on('error', () => undefined);
    for (const name of BULLMQ_ADD_SCRIPTS) {
      const script = bullmqScripts[name];
      if (!script) throw new Error(`BullMQ ${bullmqVersion} has no script ${name}`);
      client.defineCommand(`${script.name}:${bullmqVersion}`, {
        lua: script.content,
        numberOfKeys: script.keys,
      });
    }
    const { lua, numberOfKeys } = SHARED_COMMANDS.scripts.fairAdmit;
    client.defineCommand('fairAdmit', { lua, numberOfKeys });
    try {
      await waitForRedis(client, this.readyTimeoutMs);
    } catch (err) {
      client.disconnect();
      throw err;
    }
    return client;
  }
}
