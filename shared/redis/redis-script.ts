import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';

type ScriptArgument = string | number | Buffer;

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
  async run(redis: Redis, keys: string[], args: ScriptArgument[] = []): Promise<unknown> {
    try {
      return await redis.evalsha(this.sha, keys.length, ...keys, ...args);
    } catch (err) {
      if (!isNoScript(err)) throw err;
      return redis.eval(this.lua, keys.length, ...keys, ...args);
    }
  }

  /** Runs the script; bulk string replies come back as Buffers (for binary values). */
  async runBuffer(redis: Redis, keys: string[], args: ScriptArgument[] = []): Promise<unknown> {
    try {
      return await redis.callBuffer('evalsha', this.sha, keys.length, ...keys, ...args);
    } catch (err) {
      if (!isNoScript(err)) throw err;
      return redis.callBuffer('eval', this.lua, keys.length, ...keys, ...args);
    }
  }
}

function isNoScript(err: unknown): boolean {
  return (err as Error).message.startsWith('NOSCRIPT');
}
