import multipart from '@fastify/multipart';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';

export interface UploadsOptions {
  maxBytes: number;
}

/**
 * Accepts images as multipart/form-data (one file part, a few small fields) or as a raw body of
 * type image/* or application/octet-stream. Limits apply while the body streams in.
 */
export const uploadsPlugin = fp(
  async (app: FastifyInstance, opts: UploadsOptions) => {
    await app.register(multipart, {
      limits: {
        fileSize: opts.maxBytes,
        files: 1,
        fields: 10,
        fieldSize: 1024,
        fieldNameSize: 64,
        parts: 12,
        headerPairs: 32,
      },
    });
    const raw = { parseAs: 'buffer', bodyLimit: opts.maxBytes } as const;
    const keep = (_request: unknown, body: Buffer | string, done: (e: null, b: unknown) => void) =>
      done(null, body);
    app.addContentTypeParser(/^image\/[\w.+-]+$/, raw, keep);
    app.addContentTypeParser('application/octet-stream', raw, keep);
  },
  { name: 'uploads' },
);
