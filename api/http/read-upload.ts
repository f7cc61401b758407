import type { MultipartFile } from '@fastify/multipart';
import type { FastifyRequest } from 'fastify';
import type { Config } from '../../shared/config/config.js';
import { errors } from './errors.js';

export interface Upload {
  image: Buffer;
  /** Non-file multipart fields (raw bodies have none). */
  fields: Record<string, string>;
}

/** The one multipart file field name the API accepts. */
export const FILE_FIELD = 'file';

/**
 * The image of a request: the multipart file part `file` (plus the other fields), or a raw image
 * body already buffered by the content-type parser. Size limits are enforced while reading; a
 * limit hit mid-stream is answered in the catalogue's words, naming the limit.
 */
export async function readUpload(
  request: FastifyRequest,
  limits: Config['uploads'],
): Promise<Upload> {
  if (!request.isMultipart()) {
    if (Buffer.isBuffer(request.body)) {
      // Taken off the request, which lives until it is answered: a sync request's wait must not
      // keep its upload.
      const image = request.body;
      request.body = undefined;
      return { image, fields: {} };
    }
    if (request.body === undefined || request.body === null) throw new errors.FILE_MISSING();
    // A body in another type (JSON, text) was parsed by Fastify: it is not an image upload.
    throw new errors.UNSUPPORTED_MEDIA_TYPE(
      `Content-Type ${request.headers['content-type']} is not accepted; send multipart/form-data with a file part named "${FILE_FIELD}", or a raw image/* body`,
    );
  }
  let image: Buffer | undefined;
  // No prototype: a field named "__proto__" is a field like any other (and an unknown one).
  const fields: Record<string, string> = Object.create(null);
  try {
    for await (const part of request.parts()) {
      if (part.type === 'file') {
        if (part.fieldname !== FILE_FIELD) {
          throw new errors.VALIDATION_FAILED(
            `Unexpected file part "${printable(part.fieldname)}"; send the image as the part "${FILE_FIELD}"`,
          );
        }
        if (image) throw new errors.TOO_MANY_FILES();
        image = await readFilePart(part, limits.maxBytes);
      } else {
        if (part.fieldnameTruncated) {
          throw new errors.VALIDATION_FAILED('A multipart field name is too long');
        }
        if (part.valueTruncated) {
          throw new errors.VALIDATION_FAILED(
            `Field "${printable(part.fieldname)}" is longer than ${limits.maxFieldBytes} bytes`,
          );
        }
        if (Object.hasOwn(fields, part.fieldname)) {
          throw new errors.VALIDATION_FAILED(`Field "${printable(part.fieldname)}" is given twice`);
        }
        fields[part.fieldname] = String(part.value);
      }
    }
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === 'FST_PARTS_LIMIT' || code === 'FST_FIELDS_LIMIT') {
      throw new errors.VALIDATION_FAILED(
        `The multipart body has more than ${limits.maxParts} parts; send the file and a few fields`,
      );
    }
    throw err;
  }
  if (!image) throw new errors.FILE_MISSING();
  return { image, fields };
}

/**
 * A file part's bytes. Not `part.toBuffer()`, which keeps them on the part, and @fastify/multipart
 * keeps the parts until the request is answered: a sync request would hold its upload for its
 * whole wait.
 */
async function readFilePart(part: MultipartFile, maxBytes: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of part.file) chunks.push(chunk as Buffer);
  if (part.file.truncated) throw new errors.PAYLOAD_TOO_LARGE(maxBytes);
  return Buffer.concat(chunks);
}

/** A client's string as it may appear in an answer: printable ASCII, at most 64 characters. */
function printable(value: string): string {
  return value.replace(/[^\x20-\x7e]/g, '?').slice(0, 64);
}
