/**
 * The load balancer of deploy/nginx/ as a test's own child process: the template rendered with the
 * test's ports into a temporary prefix, run in the foreground by Debian's nginx.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { eventually } from './inference-stack.js';

const TEMPLATE = new URL('../../deploy/nginx/nginx.conf.template', import.meta.url);

/** Debian installs nginx in /usr/sbin, which is not on every user's PATH. */
export const NGINX = ['/usr/sbin/nginx', '/usr/bin/nginx'].find((p) => existsSync(p));

export const NGINX_INSTALL_HINT =
  'nginx is not installed: on Debian or Ubuntu `apt-get update && apt-get install -y nginx` (.ci/run installs it when missing)';

const UPSTREAM = /\$\{API_UPSTREAM\}/;
const LISTEN_PORT = /\$\{LISTEN_PORT\}/g;

export interface NginxValues {
  listenPort: number;
  /** host:port of each API instance. */
  apiServers: string[];
}

/**
 * The template with its variables filled in, as the nginx image's envsubst does; the line naming
 * API_UPSTREAM is repeated once per server.
 */
export function renderNginxConf(values: NginxValues): string {
  return readFileSync(TEMPLATE, 'utf8')
    .split('\n')
    .flatMap((line) =>
      UPSTREAM.test(line) && !line.trimStart().startsWith('#')
        ? values.apiServers.map((server) => line.replace(UPSTREAM, server))
        : [line],
    )
    .join('\n')
    .replace(LISTEN_PORT, String(values.listenPort));
}

/**
 * nginx on the rendered config, in a temporary prefix (readable by its workers, which run as
 * another user). Its output goes to a file: the config logs to /dev/stdout, which cannot be opened
 * when stdout is a socket, as Node's pipes are.
 */
async function spawnNginx(values: NginxValues, args: string[]) {
  if (!NGINX) throw new Error(NGINX_INSTALL_HINT);
  const prefix = await mkdtemp(path.join(os.tmpdir(), 'ai-gateway-nginx-'));
  await chmod(prefix, 0o755);
  const conf = path.join(prefix, 'nginx.conf');
  await writeFile(conf, renderNginxConf(values));
  const outFile = path.join(prefix, 'nginx.out');
  const out = openSync(outFile, 'a');
  const child = spawn(NGINX, ['-p', prefix, '-c', conf, ...args], {
    stdio: ['ignore', out, out],
  });
  closeSync(out);
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  return {
    child,
    exited,
    output: () => readFileSync(outFile, 'utf8'),
    remove: () => rm(prefix, { recursive: true, force: true }),
  };
}

/** `nginx -t` on the rendered config: its output, or a rejection with it. */
export async function testNginxConf(values: NginxValues): Promise<string> {
  const run = await spawnNginx(values, ['-t']);
  try {
    const code = await run.exited;
    if (code !== 0) throw new Error(`nginx -t failed:\n${run.output()}`);
    return run.output();
  } finally {
    await run.remove();
  }
}

export interface RunningNginx {
  url: string;
  /** What nginx wrote so far: its access log (JSON lines) and errors. */
  output(): string;
  stop(): Promise<void>;
}

/** Starts nginx in the foreground and waits until it accepts connections on its port. */
export async function startNginx(values: NginxValues): Promise<RunningNginx> {
  const run = await spawnNginx(values, ['-g', 'daemon off;']);
  const child: ChildProcess = run.child;
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      // SIGQUIT: nginx's graceful stop; its workers exit with the master.
      child.kill('SIGQUIT');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await run.exited;
      clearTimeout(timer);
    }
    await run.remove();
  };
  try {
    await eventually(
      async () => {
        if (child.exitCode !== null) throw new Error(`nginx exited:\n${run.output()}`);
        return (await accepts(values.listenPort)) ? true : undefined;
      },
      10_000,
      'nginx listening',
    );
  } catch (err) {
    await stop();
    throw err;
  }
  return { url: `http://127.0.0.1:${values.listenPort}`, output: run.output, stop };
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
