import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { FastifyAdapter } from '@bull-board/fastify';
import type { FastifyInstance } from 'fastify';
import type { QueueSet } from '../queues/queue-set.js';
import { authScope } from './auth.js';
import { uiPages } from './security-headers.js';

export interface QueueDashboardOptions {
  queues: QueueSet;
  /** @defaultValue '/admin/queues' */
  basePath?: string;
}

/**
 * bull-board over every queue of the system (the QueueSet follows the QueueName enum), behind the
 * admin key. Operators can look at jobs, read failure reasons, retry and clean.
 *
 * bull-board gives its routes an error handler of its own, which answers its JSON and, in
 * development mode, the error's stack. Errors raised before the admin check (rate limit, load
 * shedding, shutdown) reach it too, so it is replaced by one that hands every error on to the
 * app's handler (Fastify passes an error thrown in a scope's handler to its parent's): every answer
 * under /admin is a problem body.
 */
export async function queueDashboardPlugin(app: FastifyInstance, opts: QueueDashboardOptions) {
  const basePath = opts.basePath ?? '/admin/queues';
  const serverAdapter = new FastifyAdapter().setBasePath(basePath);
  createBullBoard({
    queues: [...opts.queues.byName.values()].map((queue) => new BullMQAdapter(queue)),
    serverAdapter,
    options: { uiConfig: { boardTitle: 'ai-gateway', hideDocsLink: true } },
  });
  serverAdapter.setErrorHandler(handOnToTheApp);
  await app.register(authScope, { mode: 'admin' });
  await app.register(uiPages);
  await app.register(serverAdapter.registerPlugin(), { prefix: basePath });
}

function handOnToTheApp(error: Error): never {
  throw error;
}
