#!/usr/bin/env node
// Runs before `npm start` and `npm test`: installs the locked dependencies when they are missing or
// older than package-lock.json, so both commands work on a fresh clone. Plain Node, no dependencies.
import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const lock = `${root}package-lock.json`;
const installed = `${root}node_modules/.package-lock.json`;

const upToDate = existsSync(installed) && statSync(installed).mtimeMs >= statSync(lock).mtimeMs;
if (!upToDate) {
  console.error('ai-gateway: installing dependencies (npm ci) ...');
  const result = spawnSync('npm', ['ci', '--no-audit', '--no-fund'], {
    cwd: root,
    stdio: 'inherit',
    // onnxruntime-node's install step downloads CUDA files, which fails offline; the CPU binding
    // ships inside the package.
    env: { ...process.env, ONNXRUNTIME_NODE_INSTALL: 'skip' },
  });
  if (result.status !== 0) {
    console.error('ai-gateway: npm ci failed; see the output above.');
    process.exit(result.status ?? 1);
  }
}
