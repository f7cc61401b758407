import type { Redis } from 'ioredis';

/** Deletes every key under `prefix:`, with SCAN (never KEYS, which blocks Redis) and UNLINK. */
export async function unlinkPrefix(redis: Redis, prefix: string): Promise<number> {
  // An empty prefix would match the whole database.
  if (!/^[\w-]+$/.test(prefix)) throw new Error(`refusing to delete keys under "${prefix}"`);
  let cursor = '0';
  let deleted = 0;
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length > 0) deleted += await redis.unlink(...keys);
  } while (cursor !== '0');
  return deleted;
}
