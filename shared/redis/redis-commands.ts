import { readFileSync } from 'node:fs';
import type { ClientContext, RedisKey, Result } from 'ioredis';

/**
 * The service's Lua scripts as ioredis commands, the way BullMQ keeps its own (`src/commands`):
 * one script a file in `commands/`, named `<name>-<number of keys>.lua` (without the number when
 * the number of keys varies: the caller passes it first), with its KEYS, ARGV and reply named at
 * the top. `--- @include "<name>"` pulls in `commands/includes/<name>.lua` (once per script).
 *
 * ioredis runs a defined command by EVALSHA (EVAL the first time on each connection, and again after
 * NOSCRIPT), gives each a `…Buffer` variant that answers Buffers, and queues it on pipelines and
 * MULTIs made from the client like any other command. Scripts run atomically: the way to make a
 * read-decide-write race-free. On a cluster, every key a script touches, named or built from a
 * prefix, carries the prefix's hash tag.
 */
export interface GatewayCommands<Context extends ClientContext = { type: 'default' }> {
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
  /** `webhook-delivery-append-2.lua`: 1 recorded, 0 the record is gone. */
  webhookDeliveryAppend(
    record: RedisKey,
    deliveries: RedisKey,
    delivery: string,
    keep: number,
  ): Result<number, Context>;
  /** `webhook-slot-take-1.lua`: slots held after the call, negative when refused. */
  webhookSlotTake(
    slots: RedisKey,
    cap: number,
    leaseMs: number,
    holder: string,
  ): Result<number, Context>;
  /** `job-forward-1.lua`: 1 moved now, 0 already moved or gone. */
  jobForward(
    record: RedisKey,
    from: string,
    to: string,
    at: string,
    error: string,
  ): Result<number, Context>;
  /** `job-request-cancel-1.lua`: {'missing'}, {'canceled' or 'requested', at}, {'finished', outcome}. */
  jobRequestCancel(record: RedisKey, now: number): Result<[string, string?], Context>;
  /** `job-confirm-canceled-2.lua`: {0} or {1, what was counted}. */
  jobConfirmCanceled(
    record: RedisKey,
    deliveries: RedisKey,
    now: number,
    retentionSeconds: number,
    ...usage: UsageArgs
  ): Result<[number, unknown?], Context>;
  /** `job-withdraw-cancel-1.lua`: 1 withdrawn, 0 not. */
  jobWithdrawCancel(record: RedisKey): Result<number, Context>;
  /** `job-begin-1.lua`, its verdict and (when asked for) the inline image as bytes. */
  jobBeginBuffer(
    record: RedisKey,
    deadline: number | '',
    now: number,
    inlineImage: '1' | '0',
  ): Result<[Buffer, (Buffer | null)?], Context>;
  /**
   * `job-settle.lua` (2 keys, or 3 with a result-cache entry): {'settled' or 'canceled', what was
   * counted, if this step counted}.
   */
  jobSettle(
    numKeys: number,
    ...keysThenArgs: (RedisKey | number)[]
  ): Result<['settled' | 'canceled', unknown?], Context>;
  /** `fair-admit-7.lua`: the job ids claimed for promotion. */
  fairAdmit(
    ...keysThenArgs: [...FairKeys, ...FairClaimArgs, string, string, number, number]
  ): Result<string[], Context>;
  /** `fair-refill-7.lua`: the job ids claimed for promotion. */
  fairRefill(...keysThenArgs: [...FairKeys, ...FairClaimArgs]): Result<string[], Context>;
}

/** The usage ledger's prefix, day and retention (UsageLedger.scriptArgs), for count-usage. */
export type UsageArgs = [string, string, number];
/** The fair scheduler's keys of one backend: ready, idle, state, weights, claims, delayed, prioritized. */
export type FairKeys = [RedisKey, RedisKey, RedisKey, RedisKey, RedisKey, RedisKey, RedisKey];
/** Pending sets' prefix, window, now, takeover age. */
export type FairClaimArgs = [string, number, number, number];

declare module 'ioredis' {
  // Every client, pipeline and MULTI has the commands in its type; defineCommands() puts them there
  // at run time.
  interface RedisCommander<Context> extends GatewayCommands<Context> {}
}

/** A command's name: each is defined with its `…Buffer` variant, typed above as it is called. */
export type CommandName = {
  [K in keyof GatewayCommands]: K extends `${infer Name}Buffer` ? Name : K;
}[keyof GatewayCommands];

/** Each command's file in `commands/`, without `.lua`. */
export const COMMAND_FILES: Readonly<Record<CommandName, string>> = {
  idempotencyClaim: 'idempotency-claim-1',
  idempotencyCommit: 'idempotency-commit-1',
  idempotencyRelease: 'idempotency-release-1',
  quotaCharge: 'quota-charge',
  quotaRefund: 'quota-refund',
  webhookDeliveryAppend: 'webhook-delivery-append-2',
  webhookSlotTake: 'webhook-slot-take-1',
  jobForward: 'job-forward-1',
  jobRequestCancel: 'job-request-cancel-1',
  jobConfirmCanceled: 'job-confirm-canceled-2',
  jobWithdrawCancel: 'job-withdraw-cancel-1',
  jobBegin: 'job-begin-1',
  jobSettle: 'job-settle',
  fairAdmit: 'fair-admit-7',
  fairRefill: 'fair-refill-7',
};

/** Where the `.lua` files are: beside this module, in the sources and in the build (dist/). */
export const COMMANDS_DIR = new URL('./commands/', import.meta.url);
/** `--- @include "<name>"` on a line of its own, as BullMQ writes it. */
const INCLUDE = /^--- @include "([\w-]+)"[ \t]*$/gm;

export interface CommandDefinition {
  lua: string;
  /** Undefined: the caller passes the number of keys first. */
  numberOfKeys: number | undefined;
}

/** The scripts, read once when this module loads, their includes resolved. */
export const COMMANDS: Readonly<Record<CommandName, CommandDefinition>> = Object.freeze(
  Object.fromEntries(
    Object.entries(COMMAND_FILES).map(([name, file]) => [name, loadCommand(file)]),
  ) as Record<CommandName, CommandDefinition>,
);

/** The client side of ioredis's `defineCommand` (Redis, Cluster, BullMQ's wrapped connection). */
interface Definable {
  defineCommand(name: string, definition: { lua: string; numberOfKeys?: number }): void;
}

/**
 * Defines every command on `client` (once: a command it has already is left alone). Pipelines and
 * MULTIs take the commands their client had when they were made.
 */
export function defineCommands(client: Definable): void {
  const existing = client as unknown as Record<string, unknown>;
  for (const [name, { lua, numberOfKeys }] of Object.entries(COMMANDS)) {
    if (typeof existing[name] === 'function') continue;
    client.defineCommand(name, numberOfKeys === undefined ? { lua } : { lua, numberOfKeys });
  }
}

function loadCommand(file: string): CommandDefinition {
  const keys = /-(\d+)$/.exec(file)?.[1];
  return {
    lua: resolveIncludes(read(new URL(`${file}.lua`, COMMANDS_DIR)), new Set()),
    numberOfKeys: keys === undefined ? undefined : Number(keys),
  };
}

/** Replaces each include line by the include's text; an include already in the script by nothing. */
function resolveIncludes(lua: string, included: Set<string>): string {
  return lua.replace(INCLUDE, (_, name: string) => {
    if (included.has(name)) return '';
    included.add(name);
    return resolveIncludes(read(new URL(`includes/${name}.lua`, COMMANDS_DIR)), included);
  });
}

function read(url: URL): string {
  try {
    return readFileSync(url, 'utf8');
  } catch (err) {
    throw new Error(
      `Lua script ${url.pathname} is missing: the build copies shared/redis/commands/ beside the compiled code (scripts/build.mjs)`,
      { cause: err },
    );
  }
}
