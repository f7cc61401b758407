import { BenchProcess } from '../bench-process.js';
import { BENCH_MODEL } from '../in-process-pipeline.js';
import { MultipartClient } from '../multipart-client.js';
import type { ClosedLoopContender, ContenderContext } from './contender.js';

/** The peer a user would pick without a queue: `bench/plain-server.ts` in its own process. */
export async function startPlainServer(ctx: ContenderContext): Promise<ClosedLoopContender> {
  const server = BenchProcess.start('plain-server', ['bench/plain-server.ts'], {
    logDir: ctx.logDir,
  });
  ctx.teardown.add('plain server process', () => server.stop());
  const [, port] = await server.waitForLine(/listening on (\d+)/);
  const client = new MultipartClient(`http://127.0.0.1:${port}`);
  const answered = (status: number, body: unknown) =>
    status === 200 && ((body as { predictions?: unknown[] })?.predictions?.length ?? 0) > 0;
  return {
    name: 'plain',
    load: 'closed-loop',
    pids: { server: server.pid },
    usesRedis: false,
    send: (image) => client.post(`/predict/${BENCH_MODEL}`, image, answered),
  };
}
