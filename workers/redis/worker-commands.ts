import type { ClientContext, RedisKey, Result } from 'ioredis';
import {
  type CommandNames,
  type CommandTable,
  loadCommands,
} from '../../shared/redis/redis-commands.js';

/** The scripts only the workers run (`commands/` beside this file), as ioredis commands. */
export interface WorkerCommands<Context extends ClientContext = { type: 'default' }> {
  /** `webhook-slot-take-1.lua`: slots held after the call, negative when refused. */
  webhookSlotTake(
    slots: RedisKey,
    cap: number,
    leaseMs: number,
    holder: string,
  ): Result<number, Context>;
}

declare module 'ioredis' {
  interface RedisCommander<Context> extends WorkerCommands<Context> {}
}

/** Define them on a client with `defineCommands(client, WORKER_COMMANDS)`. */
export const WORKER_COMMANDS: CommandTable<CommandNames<WorkerCommands>> = loadCommands(
  new URL('./commands/', import.meta.url),
  { webhookSlotTake: 'webhook-slot-take-1' },
);
