import { readdirSync, readFileSync } from 'node:fs';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { API_COMMANDS } from '../../api/redis/api-commands.js';
import { INLINE_IMAGE_FIELD } from '../../shared/jobs/job-records.js';
import {
  type CommandTable,
  defineCommands,
  SHARED_COMMANDS,
} from '../../shared/redis/redis-commands.js';
import { WORKER_COMMANDS } from '../../workers/redis/worker-commands.js';

/** Each side's scripts, by the folder they live in. */
const TABLES: [string, CommandTable][] = [
  ['shared/redis/commands/', SHARED_COMMANDS],
  ['api/redis/commands/', API_COMMANDS],
  ['workers/redis/commands/', WORKER_COMMANDS],
];
const names = (table: CommandTable) => Object.keys(table.files);
const source = (table: CommandTable, file: string) =>
  readFileSync(new URL(`${file}.lua`, table.dir), 'utf8');
/** The `.lua` files in a folder, without `.lua`; none when there is no such folder. */
const luaFiles = (dir: URL) => {
  try {
    return readdirSync(dir)
      .filter((f) => f.endsWith('.lua'))
      .map((f) => f.slice(0, -'.lua'.length));
  } catch {
    return [];
  }
};

describe.each(TABLES)('the Lua commands of %s', (folder, table) => {
  // Never connects: defining a command only hashes its script.
  const client = new Redis({ lazyConnect: true });
  afterAll(() => client.disconnect());

  it('registers every .lua file, and every registered command has its file', () => {
    expect(table.dir.pathname.endsWith(folder)).toBe(true);
    expect(luaFiles(table.dir).sort()).toEqual(Object.values(table.files).sort());
    expect(new Set(Object.values(table.files)).size).toBe(names(table).length);
  });

  it('defines each command and its Buffer variant on a client, shadowing no Redis command', () => {
    const builtin = new Set(client.getBuiltinCommands().map((c) => c.toLowerCase()));
    defineCommands(client, table);
    const defined = client as unknown as Record<string, unknown>;
    for (const name of names(table)) {
      expect(builtin.has(name.toLowerCase()), name).toBe(false);
      expect(typeof defined[name], name).toBe('function');
      expect(typeof defined[`${name}Buffer`], name).toBe('function');
    }
    // A pipeline (and a MULTI) made afterwards carries them.
    const multi = client.multi() as unknown as Record<string, unknown>;
    for (const name of names(table)) expect(typeof multi[name], name).toBe('function');
  });

  it('takes the number of keys from the file name and names each key in the header', () => {
    for (const name of names(table)) {
      const file = table.files[name]!;
      const keys = /-(\d+)$/.exec(file)?.[1];
      expect(table.scripts[name]!.numberOfKeys, file).toBe(
        keys === undefined ? undefined : Number(keys),
      );
      const header = /^--\[\[([\s\S]*?)\]\]/.exec(source(table, file))?.[1];
      expect(header, `${file}.lua starts with a --[[ header ]]`).toBeDefined();
      expect(header, file).toMatch(/Input:[\s\S]*Output:/);
      for (let i = 1; i <= Number(keys ?? 0); i++) expect(header, file).toContain(`KEYS[${i}]`);
    }
  });

  it('resolves every include, once per script, and has no include nothing uses', () => {
    const includes = luaFiles(new URL('includes/', table.dir));
    const used = new Set<string>();
    for (const name of names(table)) {
      const file = table.files[name]!;
      for (const [, include] of source(table, file).matchAll(/^--- @include "([\w-]+)"/gm)) {
        used.add(include!);
      }
      expect(table.scripts[name]!.lua, file).not.toContain('@include');
    }
    expect([...used].sort()).toEqual(includes.sort());
  });
});

describe('the shared Lua commands', () => {
  it('fair-admit and fair-refill both include the claim: its function is there once', () => {
    for (const name of ['fairAdmit', 'fairRefill'] as const) {
      expect(SHARED_COMMANDS.scripts[name].lua.match(/local function claim\(\)/g)).toHaveLength(1);
    }
  });

  it("names the job record's inline image field as job-records.ts does", () => {
    for (const name of ['jobBegin', 'jobConfirmCanceled'] as const) {
      expect(SHARED_COMMANDS.scripts[name].lua).toContain(`'${INLINE_IMAGE_FIELD}'`);
    }
  });

  it('defines the commands on a client once, however often it is asked', () => {
    const client = new Redis({ lazyConnect: true });
    const defineCommand = client.defineCommand.bind(client);
    let definitions = 0;
    client.defineCommand = (...args: Parameters<typeof defineCommand>) => {
      definitions++;
      defineCommand(...args);
    };
    defineCommands(client);
    defineCommands(client);
    defineCommands(client, API_COMMANDS);
    defineCommands(client, API_COMMANDS);
    expect(definitions).toBe(
      Object.keys(SHARED_COMMANDS.files).length + Object.keys(API_COMMANDS.files).length,
    );
    client.disconnect();
  });
});
