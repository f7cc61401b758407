/**
 * The `ai-gateway` command line, on the TypeScript client. `bin/ai-gateway.mjs` starts it
 * (`npx ai-gateway` in a clone); `main` takes its streams and environment as arguments, so
 * nothing below reads the process.
 */
import { COMMON_USAGE, type Command, DEFAULT_URL, splitCommand } from './command.js';
import { health } from './commands/health.js';
import { jobs } from './commands/jobs.js';
import { models } from './commands/models.js';
import { predict } from './commands/predict.js';
import { submit } from './commands/submit.js';
import { describeError } from './describe.js';
import { EXIT, type ExitCode, exitCodeOf, UsageError } from './exit-codes.js';
import type { Streams } from './terminal.js';

const COMMANDS: Command[] = [predict, submit, jobs, models, health];

const USAGE = `Usage: ai-gateway <command> [options]

${COMMANDS.map((c) => `  ${c.name.padEnd(8)} ${c.summary}`).join('\n')}

ai-gateway <command> --help says more.

${COMMON_USAGE}

Exit codes: 0 ok, 1 a request or job failed, 2 usage error, 3 cannot reach the API
(${DEFAULT_URL} unless --url or AI_GATEWAY_URL say otherwise), 130 interrupted.`;

export interface MainOptions extends Streams {
  env: Record<string, string | undefined>;
  /** Aborts the requests in flight (Ctrl-C). */
  signal: AbortSignal;
}

export async function main(args: string[], options: MainOptions): Promise<ExitCode> {
  const { env, signal, ...streams } = options;
  let help = 'ai-gateway --help';
  try {
    const { name, rest } = splitCommand(args);
    const command = COMMANDS.find((c) => c.name === name);
    if (command) {
      help = `ai-gateway ${command.name} --help`;
      return await command.run({ args: rest, env, streams, signal });
    }
    if (name === undefined && rest.some((arg) => arg === '--help' || arg === '-h')) {
      streams.stdout.write(`${USAGE}\n`);
      return EXIT.ok;
    }
    throw new UsageError(name === undefined ? 'no command given' : `no command "${name}"`);
  } catch (error) {
    if (signal.aborted) return EXIT.interrupted;
    const hint = error instanceof UsageError ? ` (see ${help})` : '';
    streams.stderr.write(`ai-gateway: ${describeError(error)}${hint}\n`);
    return exitCodeOf(error);
  }
}

/** Runs `main` on this process: its arguments, streams and environment; Ctrl-C aborts. */
export async function runProcess(): Promise<void> {
  const controller = new AbortController();
  // The first Ctrl-C stops the work and prints what was done; a second one kills at once.
  process.once('SIGINT', () => controller.abort());
  // A reader that went away (`ai-gateway jobs list | head`) is not an error of this command.
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') process.exit(process.exitCode ?? EXIT.ok);
    throw error;
  });
  process.exitCode = await main(process.argv.slice(2), {
    stdout: process.stdout,
    stderr: process.stderr,
    env: process.env,
    signal: controller.signal,
  });
}
