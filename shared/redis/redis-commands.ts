import { readFileSync } from 'node:fs';
import type { ClientContext, RedisKey, Result } from 'ioredis';

/**
 * The service's Lua scripts as ioredis commands, the way BullMQ keeps its own (`src/commands`):
 * one script a file in a `commands/` folder, named `<name>-<number of keys>.lua` (without the
 * number when the number of keys varies: the caller passes it first), with its KEYS, ARGV and reply
 * named at the top. `--- @include "<name>"` pulls in `includes/<name>.lua` of the same folder (once
 * per script). Each side keeps the scripts only it runs beside its own code (`api/redis/`,
 * `workers/redis/`); the ones both sides run are here, in `shared/redis/commands/`.
 *
 * ioredis runs a defined command by EVALSHA (EVAL the first time on each connection, and again after
 * NOSCRIPT), gives each a `…Buffer` variant that answers Buffers, and queues it on pipelines and
 * MULTIs made from the client like any other command. Scripts run atomically: the way to make a
 * read-decide-write race-free. On a cluster, every key a script touches, named or built from a
 * prefix, carries the prefix's hash tag.
 */
export interface SharedCommands<Context extends ClientContext = { type: 'default' }> {
  /** `webhook-delivery-append-2.lua`: 1 recorded, 0 the record is gone. */
  webhookDeliveryAppend(
    record: RedisKey,
    deliveries: RedisKey,
    delivery: string,
    keep: number,
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
  interface RedisCommander<Context> extends SharedCommands<Context> {}
}

/** A command's name: each is defined with its `…Buffer` variant, typed as it is called. */
export type CommandNames<Commands> = {
  [K in keyof Commands]: K extends `${infer Name}Buffer` ? Name : K;
}[keyof Commands] &
  string;

export interface CommandDefinition {
  lua: string;
  /** Undefined: the caller passes the number of keys first. */
  numberOfKeys: number | undefined;
}

/** One side's scripts, read once when its module loads, their includes resolved. */
export interface CommandTable<Name extends string = string> {
  /** Where the `.lua` files are: beside the module that loads them, in the sources and in dist/. */
  readonly dir: URL;
  /** Each command's file in `dir`, without `.lua`. */
  readonly files: Readonly<Record<Name, string>>;
  readonly scripts: Readonly<Record<Name, CommandDefinition>>;
  /** The clients the commands are defined on: each is defined once. */
  readonly definedOn: WeakSet<object>;
}

/** `--- @include "<name>"` on a line of its own, as BullMQ writes it. */
const INCLUDE = /^--- @include "([\w-]+)"[ \t]*$/gm;

/** Reads the scripts of `files` from `dir` (a folder URL, ending in `/`). */
export function loadCommands<Name extends string>(
  dir: URL,
  files: Record<Name, string>,
): CommandTable<Name> {
  const scripts = Object.fromEntries(
    Object.entries<string>(files).map(([name, file]) => [name, loadCommand(dir, file)]),
  ) as Record<Name, CommandDefinition>;
  return {
    dir,
    files: Object.freeze({ ...files }),
    scripts: Object.freeze(scripts),
    definedOn: new WeakSet(),
  };
}

/** The scripts both sides run. */
export const SHARED_COMMANDS: CommandTable<CommandNames<SharedCommands>> = loadCommands(
  new URL('./commands/', import.meta.url),
  {
    webhookDeliveryAppend: 'webhook-delivery-append-2',
    jobForward: 'job-forward-1',
    jobRequestCancel: 'job-request-cancel-1',
    jobConfirmCanceled: 'job-confirm-canceled-2',
    jobWithdrawCancel: 'job-withdraw-cancel-1',
    jobBegin: 'job-begin-1',
    jobSettle: 'job-settle',
    fairAdmit: 'fair-admit-7',
    fairRefill: 'fair-refill-7',
  },
);

/** The client side of ioredis's `defineCommand` (Redis, Cluster, BullMQ's wrapped connection). */
interface Definable {
  defineCommand(name: string, definition: { lua: string; numberOfKeys?: number }): void;
}

/**
 * Defines the commands of `table` on `client`, the first time it is given that client; later calls
 * return at once, so a caller on a hot path may call it each time. Pipelines and MULTIs take the
 * commands their client had when they were made.
 */
export function defineCommands(client: Definable, table: CommandTable = SHARED_COMMANDS): void {
  if (table.definedOn.has(client)) return;
  for (const [name, { lua, numberOfKeys }] of Object.entries(table.scripts)) {
    client.defineCommand(name, numberOfKeys === undefined ? { lua } : { lua, numberOfKeys });
  }
  table.definedOn.add(client);
}

function loadCommand(dir: URL, file: string): CommandDefinition {
  const keys = /-(\d+)$/.exec(file)?.[1];
  return {
    lua: resolveIncludes(dir, read(new URL(`${file}.lua`, dir)), new Set()),
    numberOfKeys: keys === undefined ? undefined : Number(keys),
  };
}

/** Replaces each include line by the include's text; an include already in the script by nothing. */
function resolveIncludes(dir: URL, lua: string, included: Set<string>): string {
  return lua.replace(INCLUDE, (_, name: string) => {
    if (included.has(name)) return '';
    included.add(name);
    return resolveIncludes(dir, read(new URL(`includes/${name}.lua`, dir)), included);
  });
}

function read(url: URL): string {
  try {
    return readFileSync(url, 'utf8');
  } catch (err) {
    throw new Error(
      `Lua script ${url.pathname} is missing: the build copies the .lua files beside the compiled code (scripts/build.mjs)`,
      { cause: err },
    );
  }
}
