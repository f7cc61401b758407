import { InProcessPipeline } from '../in-process-pipeline.js';
import type { ClosedLoopContender, ContenderContext } from './contender.js';

/**
 * The physical reference: the worker's stages (sharp, ONNX Runtime, top-k) called in the benchmark
 * process itself. No HTTP, no queue, no storage; all its CPU is the client's.
 */
export async function startDirectPipeline(ctx: ContenderContext): Promise<ClosedLoopContender> {
  const pipeline = await InProcessPipeline.load(ctx.config);
  ctx.teardown.add('direct pipeline: ONNX session', () => pipeline.close());
  return {
    name: 'direct',
    load: 'closed-loop',
    pids: {},
    usesRedis: false,
    async send(image) {
      const predictions = await pipeline.run(image);
      return predictions.length > 0 ? { ok: true } : { ok: false, reason: 'no predictions' };
    },
  };
}
