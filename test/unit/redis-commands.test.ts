import { readdirSync, readFileSync } from 'node:fs';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { INLINE_IMAGE_FIELD } from '../../shared/jobs/job-records.js';
import {
  COMMAND_FILES,
  COMMANDS,
  COMMANDS_DIR,
  type CommandName,
  defineCommands,
} from '../../shared/redis/redis-commands.js';

const names = Object.keys(COMMAND_FILES) as CommandName[];
const source = (file: string) => readFileSync(new URL(`${file}.lua`, COMMANDS_DIR), 'utf8');
/** The `.lua` files in a folder, without `.lua`. */
const luaFiles = (dir: URL) =>
  readdirSync(dir)
    .filter((f) => f.endsWith('.lua'))
    .map((f) => f.slice(0, -'.lua'.length));

describe('the Lua commands (shared/redis/commands/)', () => {
  // Never connects: defining a command only hashes its script.
  const client = new Redis({ lazyConnect: true });
  afterAll(() => client.disconnect());

  it('registers every .lua file, and every registered command has its file', () => {
    expect(luaFiles(COMMANDS_DIR).sort()).toEqual(Object.values(COMMAND_FILES).sort());
    expect(new Set(Object.values(COMMAND_FILES)).size).toBe(names.length);
  });

  it('defines each command and its Buffer variant on a client, shadowing no Redis command', () => {
    const builtin = new Set(client.getBuiltinCommands().map((c) => c.toLowerCase()));
    defineCommands(client);
    const defined = client as unknown as Record<string, unknown>;
    for (const name of names) {
      expect(builtin.has(name.toLowerCase()), name).toBe(false);
      expect(typeof defined[name], name).toBe('function');
      expect(typeof defined[`${name}Buffer`], name).toBe('function');
    }
    // A pipeline (and a MULTI) made afterwards carries them.
    expect(typeof (client.multi() as unknown as Record<string, unknown>).fairAdmit).toBe(
      'function',
    );
  });

  it('takes the number of keys from the file name and names each key in the header', () => {
    for (const name of names) {
      const file = COMMAND_FILES[name];
      const keys = /-(\d+)$/.exec(file)?.[1];
      expect(COMMANDS[name].numberOfKeys, file).toBe(keys === undefined ? undefined : Number(keys));
      const header = /^--\[\[([\s\S]*?)\]\]/.exec(source(file))?.[1];
      expect(header, `${file}.lua starts with a --[[ header ]]`).toBeDefined();
      expect(header, file).toMatch(/Input:[\s\S]*Output:/);
      for (let i = 1; i <= Number(keys ?? 0); i++) expect(header, file).toContain(`KEYS[${i}]`);
    }
  });

  it('resolves every include, once per script, and has no include nothing uses', () => {
    const includes = luaFiles(new URL('includes/', COMMANDS_DIR));
    const used = new Set<string>();
    for (const name of names) {
      const file = COMMAND_FILES[name];
      for (const [, include] of source(file).matchAll(/^--- @include "([\w-]+)"/gm)) {
        used.add(include!);
      }
      expect(COMMANDS[name].lua, file).not.toContain('@include');
    }
    expect([...used].sort()).toEqual(includes.sort());
    // fair-admit and fair-refill both include the claim: its function is there once.
    expect(COMMANDS.fairAdmit.lua.match(/local function claim\(\)/g)).toHaveLength(1);
    expect(COMMANDS.fairRefill.lua.match(/local function claim\(\)/g)).toHaveLength(1);
  });

  it("names the job record's inline image field as job-records.ts does", () => {
    for (const name of ['jobBegin', 'jobConfirmCanceled'] as const) {
      expect(COMMANDS[name].lua).toContain(`'${INLINE_IMAGE_FIELD}'`);
    }
  });
});
