/**
 * The thread behind {@link OnnxRuntimeThreadBackend}: an {@link OnnxRuntimeBackend} answering the
 * main thread's calls one message at a time. ONNX Runtime's `run` is synchronous, so here it
 * blocks only this thread, not the worker's event loop (BullMQ's lock renewals, Redis replies,
 * the next job's image decode).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { UnrecoverableError } from 'bullmq';
import { OnnxRuntimeBackend, type OnnxRuntimeBackendOptions } from './onnx-runtime.backend.js';
import type { ThreadCall, ThreadReply } from './onnx-runtime-thread.js';

const port = parentPort!;
const backend = new OnnxRuntimeBackend(workerData as OnnxRuntimeBackendOptions);

port.on('message', async (call: ThreadCall) => {
  let reply: ThreadReply;
  const transfer: ArrayBuffer[] = [];
  try {
    switch (call.op) {
      case 'load':
        reply = { id: call.id, ok: true, value: await backend.load(call.models) };
        break;
      case 'infer': {
        const response = await backend.infer(call.request);
        transfer.push(...transferable(response.output.data));
        reply = { id: call.id, ok: true, value: response };
        break;
      }
      case 'close':
        await backend.close();
        reply = { id: call.id, ok: true, value: undefined };
        break;
    }
  } catch (err) {
    const { message } = err as Error;
    reply = { id: call.id, ok: false, message, unrecoverable: err instanceof UnrecoverableError };
  }
  port.postMessage(reply, transfer);
});

/** An output's buffer goes back without a copy when it is the array's own. */
function transferable(data: Float32Array): ArrayBuffer[] {
  const { buffer } = data;
  return buffer instanceof ArrayBuffer && data.byteLength === buffer.byteLength ? [buffer] : [];
}
