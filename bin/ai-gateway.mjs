#!/usr/bin/env node
// The `ai-gateway` command (package.json `bin`; `npx ai-gateway` in a clone). It runs the
// TypeScript sources through tsx when both are there (a clone after `npm install`: always the
// current code), and otherwise the compiled CLI that `npm run build` writes to dist/ (an image
// with production dependencies only, where tsx is not installed).
import { existsSync } from 'node:fs';

const sources = new URL('../client/cli/main.ts', import.meta.url);
const compiled = new URL('../dist/client/cli/main.js', import.meta.url);

async function entry() {
  if (existsSync(sources)) {
    try {
      const { register } = await import('tsx/esm/api');
      register();
      return sources;
    } catch (error) {
      if (error?.code !== 'ERR_MODULE_NOT_FOUND') throw error;
    }
  }
  if (existsSync(compiled)) return compiled;
  process.stderr.write('ai-gateway: run `npm install` (or `npm run build`) first\n');
  process.exit(2);
}

const { runProcess } = await import((await entry()).href);
await runProcess();
