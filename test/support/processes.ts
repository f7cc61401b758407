import { type ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));

/**
 * Compiled output (`tsc -p tsconfig.build.json`, as the image runs it) to start processes from
 * instead of the TypeScript sources; see compiled-build.ts.
 */
export interface CompiledBuild {
  /** The build's root: `<outDir>/api/main.js`, `<outDir>/workers/main.js`. */
  outDir: string;
  /** The Node binary to run it with. @defaultValue this process's */
  node?: string;
}

/**
 * The command for an entry point (`api/main`, `workers/main`): the sources through tsx, or the
 * compiled JavaScript with plain Node, as the image runs it.
 */
function command(entry: string, args: string[], build?: CompiledBuild): [string, string[]] {
  if (!build) return [process.execPath, ['--import', 'tsx', `${entry}.ts`, ...args]];
  return [build.node ?? process.execPath, [join(build.outDir, `${entry}.js`), ...args]];
}

/** A real API or worker process, with its log lines kept for asserts. */
export class ServiceProcess {
  readonly lines: string[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private readonly child: ChildProcess;
  private listeners = new Set<() => void>();

  constructor(
    readonly name: string,
    [file, args]: [string, string[]],
    env: NodeJS.ProcessEnv,
  ) {
    this.child = spawn(file, args, {
      cwd: root,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    for (const stream of [this.child.stdout, this.child.stderr]) {
      let rest = '';
      stream?.setEncoding('utf8').on('data', (chunk: string) => {
        const parts = (rest + chunk).split('\n');
        rest = parts.pop() ?? '';
        this.lines.push(...parts.filter(Boolean));
        for (const notify of this.listeners) notify();
      });
    }
    this.exited = new Promise((resolve) =>
      this.child.once('exit', (code, signal) => resolve({ code, signal })),
    );
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Parsed JSON log lines (non-JSON lines skipped). */
  logs(): Record<string, unknown>[] {
    return this.lines.flatMap((line) => {
      try {
        return [JSON.parse(line) as Record<string, unknown>];
      } catch {
        return [];
      }
    });
  }

  /** Resolves when a log line matches, rejects on timeout or exit, with the output for context. */
  waitForLog(pattern: RegExp, timeoutMs = 30_000): Promise<string> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const line = this.lines.find((l) => pattern.test(l));
        if (line) finish(() => resolve(line));
        else if (!this.running) finish(() => reject(this.failure(`exited before ${pattern}`)));
      };
      const timer = setTimeout(
        () => finish(() => reject(this.failure(`no ${pattern} within ${timeoutMs} ms`))),
        timeoutMs,
      );
      const finish = (settle: () => void) => {
        clearTimeout(timer);
        this.listeners.delete(check);
        void this.exited.then(() => undefined);
        settle();
      };
      this.listeners.add(check);
      void this.exited.then(check);
      check();
    });
  }

  signal(signal: NodeJS.Signals): void {
    if (this.running) this.child.kill(signal);
  }

  /** SIGTERM, then SIGKILL if it has not exited within `graceMs`. */
  async stop(graceMs = 15_000): Promise<void> {
    if (!this.running) return;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }

  private failure(what: string): Error {
    return new Error(`${this.name} ${what}. Output:\n${this.lines.slice(-30).join('\n')}`);
  }
}

export function startApi(env: NodeJS.ProcessEnv, build?: CompiledBuild): ServiceProcess {
  return new ServiceProcess('api', command('api/main', [], build), env);
}

export function startWorker(
  env: NodeJS.ProcessEnv,
  backend = 'onnx',
  build?: CompiledBuild,
): ServiceProcess {
  const args = ['--backend', backend];
  return new ServiceProcess(`worker-${backend}`, command('workers/main', args, build), env);
}

export function startWebhookWorker(env: NodeJS.ProcessEnv, build?: CompiledBuild): ServiceProcess {
  return new ServiceProcess('worker-webhooks', command('workers/main', ['--webhooks'], build), env);
}

/** A TCP port that was free a moment ago. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}
