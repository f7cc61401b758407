import type { GatewayStack } from '../gateway-stack.js';
import { MultipartClient } from '../multipart-client.js';
import type { ClosedLoopContender } from './contender.js';

/** The whole gateway, synchronously: `POST /predict/<model>` (text_orientation) waits for the job. */
export function gatewaySync(stack: GatewayStack): ClosedLoopContender {
  const client = new MultipartClient(stack.baseUrl, stack.headers);
  const succeeded = (status: number, body: unknown) =>
    status === 200 && (body as { status?: string })?.status === 'succeeded';
  return {
    name: 'gateway',
    load: 'closed-loop',
    pids: { server: stack.api.pid, worker: stack.worker.pid },
    usesRedis: true,
    send: (image) => client.post(`/predict/${stack.model}`, image, succeeded),
  };
}
