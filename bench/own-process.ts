import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { constants } from 'node:os';
import { Teardown } from './teardown.js';

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

/**
 * The whole life of a benchmark script: re-runs itself in its own process (see
 * {@link runInOwnProcess}), then runs `main` and the teardown it filled, also on Ctrl-C or
 * SIGTERM, and exits 0, 1 on an error, or 130 when interrupted.
 */
export async function runBenchmark(
  script: string,
  main: (teardown: Teardown) => Promise<void>,
): Promise<never> {
  if (!isOwnProcess()) process.exit(await runInOwnProcess(script));
  const teardown = new Teardown();
  let interrupted = false;
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    // Not `once`: a Ctrl-C reaches this process twice (from the terminal and relayed), and the
    // second must not end it with the default action half-way through its clean-up.
    process.on(signal, () => {
      if (interrupted) return;
      interrupted = true;
      console.error(`\n${signal}: stopping the benchmark's processes and deleting its keys`);
      void teardown.run().finally(() => process.exit(130));
    });
  }
  try {
    await main(teardown);
    await teardown.run();
    process.exit(0);
  } catch (err) {
    console.error(err instanceof Error ? (err.stack ?? err.message) : err);
    await teardown.run();
    process.exit(1);
  }
}
