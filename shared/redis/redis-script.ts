import { createHash } from 'node:crypto';
import type { RedisClient } from './redis.js';

type ScriptArgument = string | number | Buffer;

/**
 * ioredis gives every command a `…Buffer` variant that answers Buffers (its README); its types
 * leave out those of EVAL and EVALSHA.
 */
interface BufferScripting {
  evalshaBuffer(sha: string, numKeys: number, ...args: ScriptArgument[]): Promise<unknown>;
  evalBuffer(lua: string, numKeys: number, ...args: ScriptArgument[]): Promise<unknown>;
}

/**
 * A Lua script run by its SHA (EVALSHA), loaded on first use or after a Redis restart (NOSCRIPT).
 * Scripts run atomically: the way to make a read-decide-write on one key race-free.
 */
export class RedisScript {
  private readonly sha: string;

  constructor(private readonly lua: string) {
    this.sha = createHash('sha1').update(lua).digest('hex');
  }

  /** Runs the script; bulk string replies come back as strings. */
  async run(redis: RedisClient, keys: string[], args: ScriptArgument[] = []): Promise<unknown> {
    try {
      return await redis.evalsha(this.sha, keys.length, ...keys, ...args);
    } catch (err) {
      if (!isNoScript(err)) throw err;
      return redis.eval(this.lua, keys.length, ...keys, ...args);
    }
  }

  /** Runs the script; bulk string replies come back as Buffers (for binary values). */
  async runBuffer(
    redis: RedisClient,
    keys: string[],
    args: ScriptArgument[] = [],
  ): Promise<unknown> {
    const scripting = redis as unknown as BufferScripting;
    try {
      return await scripting.evalshaBuffer(this.sha, keys.length, ...keys, ...args);
    } catch (err) {
      if (!isNoScript(err)) throw err;
      return scripting.evalBuffer(this.lua, keys.length, ...keys, ...args);
    }
  }
}

function isNoScript(err: unknown): boolean {
  return (err as Error).message.startsWith('NOSCRIPT');
}
