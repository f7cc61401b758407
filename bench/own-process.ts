import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { constants } from 'node:os';

/** Set in the environment of the benchmark's own process. */
const MARK = 'AI_GATEWAY_BENCH_OWN_PROCESS';

/**
 * Whether this is the process the benchmark runs in, rather than the one `tsx` started.
 *
 * `tsx <file>` runs the file in a child and relays Ctrl-C to it, but SIGKILLs that child when it
 * has not acknowledged the signal within 30 ms. A load generator's event loop is often busy for
 * longer (ONNX Runtime runs on the main thread), and a killed benchmark leaves its processes,
 * Redis keys and temp folder behind. So the process tsx starts only relays: see
 * {@link runInOwnProcess}.
 */
export function isOwnProcess(): boolean {
  return process.env[MARK] === '1';
}

/**
 * Runs `script` with this process's arguments in a child (`node --import tsx`), passes SIGINT and
 * SIGTERM on to it, and resolves with its exit code once it has exited (and cleaned up).
 */
export async function runInOwnProcess(script: string): Promise<number> {
  const child = spawn(process.execPath, ['--import', 'tsx', script, ...process.argv.slice(2)], {
    stdio: 'inherit',
    env: { ...process.env, [MARK]: '1' },
  });
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => child.kill(signal));
  }
  const [code, signal] = (await once(child, 'exit')) as [number | null, NodeJS.Signals | null];
  return code ?? 128 + (signal ? constants.signals[signal] : 0);
}
