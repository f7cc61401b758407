import { parsePrometheusText, sampleValue } from '../test/support/prometheus-text.js';
import type { WindowHooks } from './load-generator.js';

/** The worker's histogram of inputs per backend call (shared/metrics/worker-metrics.ts). */
const BATCH_SIZE = 'ai_gateway_batch_size';

/** Backend calls and the inputs they carried, between two readings of a worker's /metrics. */
export interface BatchCounts {
  /** `ai_gateway_batch_size_count`: one per backend call. */
  backendCalls: number;
  /** `ai_gateway_batch_size_sum`: the jobs' inputs in those calls. */
  jobs: number;
}

async function read(metricsUrl: string, model: string): Promise<BatchCounts> {
  const response = await fetch(metricsUrl);
  if (!response.ok) throw new Error(`${metricsUrl} answered ${response.status}`);
  const samples = parsePrometheusText(await response.text());
  return {
    backendCalls: sampleValue(samples, `${BATCH_SIZE}_count`, { model }),
    jobs: sampleValue(samples, `${BATCH_SIZE}_sum`, { model }),
  };
}

/**
 * Window hooks that read a worker's batch histogram for `model` at the edges of a measuring window;
 * `counts()` gives the difference once the window has ended.
 */
export function batchCountsWindow(
  metricsUrl: string,
  model: string,
): WindowHooks & { counts(): BatchCounts } {
  let before: BatchCounts | undefined;
  let after: BatchCounts | undefined;
  return {
    begin: async () => {
      before = await read(metricsUrl, model);
    },
    end: async () => {
      after = await read(metricsUrl, model);
    },
    counts() {
      if (!before || !after) throw new Error('batch counts read before the window ended');
      return {
        backendCalls: after.backendCalls - before.backendCalls,
        jobs: after.jobs - before.jobs,
      };
    },
  };
}
