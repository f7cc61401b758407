import multipart from '@fastify/multipart';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { Config } from '../../shared/config/config.js';

/** Longest multipart field name: ours are short words. */
const MAX_FIELD_NAME_BYTES = 64;
/** Headers per multipart part: Content-Disposition and Content-Type, with room to spare. */
const MAX_PART_HEADERS = 8;

/**
 * Accepts images as multipart/form-data (one file part, a few small fields) or as a raw body of
 * type image/* or application/octet-stream. Every limit applies while the body streams in, so an
 * oversized or over-long upload is cut off, not buffered: bytes (MAX_UPLOAD_BYTES), parts
 * (MAX_UPLOAD_PARTS), field values (MAX_FIELD_BYTES), field names, part headers.
 */
export const multipartPlugin = fp(
  async (app: FastifyInstance, opts: Config['uploads']) => {
    await app.register(multipart, {
      limits: {
        fileSize: opts.maxBytes,
        // A second file is refused when it starts, not after it has been read.
        files: 1,
        fields: opts.maxParts - 1,
        parts: opts.maxParts,
        fieldSize: opts.maxFieldBytes,
        fieldNameSize: MAX_FIELD_NAME_BYTES,
        headerPairs: MAX_PART_HEADERS,
      },
    });
    const raw = { parseAs: 'buffer', bodyLimit: opts.maxBytes } as const;
    const keep = (_request: unknown, body: Buffer | string, done: (e: null, b: unknown) => void) =>
      done(null, body);
    app.addContentTypeParser(/^image\/[\w.+-]+$/, raw, keep);
    app.addContentTypeParser('application/octet-stream', raw, keep);
  },
  { name: 'multipart' },
);
