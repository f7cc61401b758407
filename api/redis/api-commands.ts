import type { ClientContext, RedisKey, Result } from 'ioredis';
import {
  type CommandNames,
  type CommandTable,
  loadCommands,
} from '../../shared/redis/redis-commands.js';

/** The scripts only the API runs (`commands/` beside this file), as ioredis commands. */
export interface ApiCommands<Context extends ClientContext = { type: 'default' }> {
  /** `idempotency-claim-1.lua`: {'claimed'} or {'taken', job id, fingerprint, state}. */
  idempotencyClaim(
    key: RedisKey,
    jobId: string,
    fingerprint: string,
    leaseMs: number,
  ): Result<string[], Context>;
  /** `idempotency-commit-1.lua`: 1 committed, 0 not the job's key. */
  idempotencyCommit(
    key: RedisKey,
    jobId: string,
    retentionSeconds: number,
  ): Result<number, Context>;
  /** `idempotency-release-1.lua`: 1 released, 0 not the job's key. */
  idempotencyRelease(key: RedisKey, jobId: string): Result<number, Context>;
  /** `quota-charge.lua`: {1 taken or 0 refused, used per counter}; ARGV limit, expiry per counter. */
  quotaCharge(numKeys: number, ...keysThenArgs: (RedisKey | number)[]): Result<number[], Context>;
  /** `quota-refund.lua`: the number of counters. */
  quotaRefund(numKeys: number, ...keys: RedisKey[]): Result<number, Context>;
}

declare module 'ioredis' {
  interface RedisCommander<Context> extends ApiCommands<Context> {}
}

/** Define them on a client with `defineCommands(client, API_COMMANDS)`. */
export const API_COMMANDS: CommandTable<CommandNames<ApiCommands>> = loadCommands(
  new URL('./commands/', import.meta.url),
  {
    idempotencyClaim: 'idempotency-claim-1',
    idempotencyCommit: 'idempotency-commit-1',
    idempotencyRelease: 'idempotency-release-1',
    quotaCharge: 'quota-charge',
    quotaRefund: 'quota-refund',
  },
);
