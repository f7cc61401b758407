import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { CompiledBuild } from './processes.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
/** tsc on the whole service takes 15-60 s on a busy 2-core machine. */
const BUILD_TIMEOUT_MS = 180_000;

/**
 * Compiles the service as `npm run build` and the Dockerfile do (`scripts/build.mjs`: tsc on
 * `tsconfig.build.json`, then the Lua scripts copied beside the compiled code), into a
 * folder of its own under test-output/, so a test runs what ships without touching a developer's
 * `dist/`. The folder is inside the repository so the compiled code finds `node_modules` and
 * `models/` as it does in the image's /app. `TEST_NODE_BINARY` runs the processes with another
 * Node (for example the image's LTS line) than the one running the tests.
 */
export async function buildCompiled(): Promise<CompiledBuild & { remove(): Promise<void> }> {
  const outDir = join(root, 'test-output', `dist-${randomUUID().slice(0, 8)}`);
  try {
    await promisify(execFile)(
      process.execPath,
      [join(root, 'scripts', 'build.mjs'), '--outDir', outDir],
      { cwd: root, timeout: BUILD_TIMEOUT_MS },
    );
  } catch (err) {
    await rm(outDir, { recursive: true, force: true });
    const { stdout = '', message } = err as { stdout?: string; message: string };
    throw new Error(`scripts/build.mjs failed: ${stdout || message}`);
  }
  const node = process.env.TEST_NODE_BINARY;
  return {
    outDir,
    ...(node ? { node } : {}),
    remove: () => rm(outDir, { recursive: true, force: true }),
  };
}
