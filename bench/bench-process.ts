import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));

/** What a child process is started with, its defaults applied. */
interface SpawnOptions {
  name: string;
  logPath: string;
  args: string[];
  env: NodeJS.ProcessEnv;
  nodeArgs: string[];
  cwd: string;
}

/**
 * A child process of the benchmark (`node --import tsx <script>`), its stdout and stderr written
 * straight to a log file: at info level the gateway logs every request, and passing those lines
 * through this process would charge their cost to the load generator.
 */
export class BenchProcess {
  readonly exited: Promise<void>;
  private readonly child: ChildProcess;
  private stopping?: Promise<void>;

  readonly name: string;
  readonly logPath: string;

  private constructor({ name, logPath, args, env, nodeArgs, cwd }: SpawnOptions) {
    this.name = name;
    this.logPath = logPath;
    const log = openSync(logPath, 'w');
    try {
      this.child = spawn(process.execPath, [...nodeArgs, '--import', 'tsx', ...args], {
        cwd,
        env: { ...process.env, ...env },
        stdio: ['ignore', log, log],
      });
    } finally {
      // The child holds its own copy of the descriptor.
      closeSync(log);
    }
    this.exited = new Promise((resolve) => {
      this.child.once('exit', () => resolve());
      this.child.once('error', () => resolve());
    });
  }

  static start(
    name: string,
    args: string[],
    options: {
      logDir: string;
      env?: NodeJS.ProcessEnv;
      /** Node's own flags (`--cpu-prof`), which NODE_OPTIONS does not take. */
      nodeArgs?: string[];
      /** The source tree the script runs from (another checkout, to compare). @defaultValue this one */
      cwd?: string;
    },
  ): BenchProcess {
    mkdirSync(options.logDir, { recursive: true });
    const log = join(options.logDir, `${name}.log`);
    const { env = {}, nodeArgs = [], cwd = root } = options;
    return new BenchProcess({ name, logPath: log, args, env, nodeArgs, cwd });
  }

  get pid(): number {
    if (this.child.pid === undefined) throw new Error(`${this.name} did not start`);
    return this.child.pid;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Polls the log until a line matches: for start-up only, while the log is short. */
  async waitForLine(pattern: RegExp, timeoutMs = 60_000): Promise<RegExpExecArray> {
    const until = Date.now() + timeoutMs;
    while (Date.now() < until) {
      const match = pattern.exec(readFileSync(this.logPath, 'utf8'));
      if (match) return match;
      if (!this.running) throw this.failure(`exited before logging ${pattern}`);
      await sleep(100);
    }
    throw this.failure(`logged no ${pattern} within ${timeoutMs} ms`);
  }

  /** SIGTERM, then SIGKILL after `graceMs`. Idempotent. */
  stop(graceMs = 10_000): Promise<void> {
    this.stopping ??= (async () => {
      if (!this.running) return;
      this.child.kill('SIGTERM');
      const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
      await this.exited;
      clearTimeout(timer);
    })();
    return this.stopping;
  }

  private failure(what: string): Error {
    const tail = readFileSync(this.logPath, 'utf8').split('\n').slice(-20).join('\n');
    return new Error(`${this.name} ${what} (log: ${this.logPath}):\n${tail}`);
  }
}
