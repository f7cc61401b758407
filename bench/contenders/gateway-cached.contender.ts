import type { GatewayStack } from '../gateway-stack.js';
import { withoutUniqueMark } from '../images.js';
import { BENCH_MODEL } from '../in-process-pipeline.js';
import { MultipartClient } from '../multipart-client.js';
import type { ClosedLoopContender } from './contender.js';

/**
 * The gateway's sync path when the result cache answers: the same image every time (the bench
 * image without the mark that makes each request's bytes unique), so after the first request (in
 * the unrecorded priming phase) every one is a hit and no job is queued or run. The opposite of the
 * other contenders on purpose: theirs are all misses.
 */
export function gatewayCached(stack: GatewayStack): ClosedLoopContender {
  const client = new MultipartClient(stack.baseUrl, stack.headers);
  const hit = (status: number, body: unknown) => {
    const job = body as { status?: string; cached?: boolean } | undefined;
    return status === 200 && job?.status === 'succeeded' && job.cached === true;
  };
  return {
    name: 'cached',
    load: 'closed-loop',
    pids: { server: stack.api.pid, worker: stack.worker.pid },
    usesRedis: true,
    send: (image) => client.post(`/predict/${BENCH_MODEL}`, withoutUniqueMark(image), hit),
  };
}
