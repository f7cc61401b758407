import { ConnectionError } from '../index.js';

/** What the CLI's exit status means (the README's CLI section lists them; scripts rely on them). */
export const EXIT = {
  ok: 0,
  /**
   * Something failed: the API answered with a problem, a job ended failed or canceled, a file
   * could not be read, a wait ran out.
   */
  failed: 1,
  /** The command line is wrong; nothing was sent. */
  usage: 2,
  /** No connection to the API (refused, host not found, reset). */
  unreachable: 3,
  /** Stopped with Ctrl-C (128 + SIGINT, as shells report it). */
  interrupted: 130,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** A wrong command line: exit 2, with a pointer to `--help`. */
export class UsageError extends Error {
  override name = 'UsageError';
}

export function exitCodeOf(error: unknown): ExitCode {
  if (error instanceof UsageError) return EXIT.usage;
  if (error instanceof ConnectionError) return EXIT.unreachable;
  return EXIT.failed;
}

/** The one of two exit codes that says more: unreachable over failed over ok. */
export function worse(a: ExitCode, b: ExitCode): ExitCode {
  return a >= b ? a : b;
}
