/**
 * The plain server contender, run as its own process by the benchmark: what a user would write
 * without a queue. One Fastify server with @fastify/multipart; `POST /predict/text_orientation`
 * takes the file part `file`, runs the worker's pipeline in this process and answers
 * `{"predictions":[{label,index,score}]}`. No queue, no storage, no auth, no request logging
 * (Fastify's default). Listens on 127.0.0.1, a free port, and prints `listening on <port>`.
 *
 *   node --import tsx bench/plain-server.ts
 */
import multipart from '@fastify/multipart';
import Fastify from 'fastify';
import { loadConfig } from '../shared/config/config.js';
import { BENCH_MODEL, InProcessPipeline } from './in-process-pipeline.js';

const config = loadConfig();
const pipeline = await InProcessPipeline.load(config);
const app = Fastify();
await app.register(multipart, { limits: { fileSize: config.uploads.maxBytes, files: 1 } });

app.post(`/predict/${BENCH_MODEL}`, async (request, reply) => {
  const file = await request.file();
  if (file?.fieldname !== 'file') {
    return reply.code(400).send({ error: 'send the image as the multipart file part "file"' });
  }
  const predictions = await pipeline.run(await file.toBuffer());
  return { predictions };
});

let closing = false;
const shutdown = async () => {
  if (closing) return;
  closing = true;
  await app.close();
  await pipeline.close();
  process.exit(0);
};
process.once('SIGTERM', () => void shutdown());
process.once('SIGINT', () => void shutdown());

await app.listen({ host: '127.0.0.1', port: 0 });
const address = app.server.address();
console.log(`listening on ${typeof address === 'object' && address ? address.port : 0}`);
