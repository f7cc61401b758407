#!/usr/bin/env node
// `npm run build`, the Dockerfile's build stage and the compiled-build tests: tsc on
// tsconfig.build.json, then the files tsc does not emit but the code reads beside itself at run
// time (the Lua scripts, `redis/commands/` of api/, workers/ and shared/) copied to the same places under the output folder.
// Plain Node, no dependencies. `node scripts/build.mjs [--outDir <dir>]` (default dist/).
import { spawnSync } from 'node:child_process';
import { cpSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const SOURCES = ['api', 'workers', 'shared', 'client'];
const ASSETS = /\.lua$/;

const at = process.argv.indexOf('--outDir');
const outDir = resolve(root, at === -1 ? 'dist' : process.argv[at + 1]);

const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
const result = spawnSync(process.execPath, [tsc, '-p', 'tsconfig.build.json', '--outDir', outDir], {
  cwd: root,
  stdio: 'inherit',
});
if (result.status !== 0) process.exit(result.status ?? 1);

for (const dir of SOURCES) {
  for (const file of readdirSync(join(root, dir), { recursive: true, encoding: 'utf8' })) {
    if (ASSETS.test(file)) cpSync(join(root, dir, file), join(outDir, dir, file));
  }
}
