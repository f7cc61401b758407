import type { FastifyRequest } from 'fastify';
import { errors } from '../../shared/errors/index.js';

export interface Upload {
  image: Buffer;
  /** Non-file multipart fields (raw bodies have none). */
  fields: Record<string, string>;
}

/** The one multipart file field name the API accepts. */
export const FILE_FIELD = 'file';

/**
 * The image of a request: the multipart file part `file` (plus the other fields), or a raw image
 * body already buffered by the content-type parser. Size limits are enforced while reading.
 */
export async function readUpload(request: FastifyRequest): Promise<Upload> {
  if (!request.isMultipart()) {
    if (Buffer.isBuffer(request.body)) return { image: request.body, fields: {} };
    if (request.body === undefined || request.body === null) throw new errors.FILE_MISSING();
    // A body in another type (JSON, text) was parsed by Fastify: it is not an image upload.
    throw new errors.UNSUPPORTED_MEDIA_TYPE(
      `Content-Type ${request.headers['content-type']} is not accepted; send multipart/form-data with a file part named "${FILE_FIELD}", or a raw image/* body`,
    );
  }
  let image: Buffer | undefined;
  const fields: Record<string, string> = {};
  for await (const part of request.parts()) {
    if (part.type === 'file') {
      if (part.fieldname !== FILE_FIELD) {
        throw new errors.VALIDATION_FAILED(
          `Unexpected file part "${part.fieldname}"; send the image as the part "${FILE_FIELD}"`,
        );
      }
      if (image) throw new errors.TOO_MANY_FILES();
      image = await part.toBuffer();
    } else {
      fields[part.fieldname] = String(part.value);
    }
  }
  if (!image) throw new errors.FILE_MISSING();
  return { image, fields };
}
