import sharp, { type Metadata } from 'sharp';
import { errors } from '../../shared/errors/index.js';

/** Formats accepted by content. SVG and other formats that can reference files or URLs are not. */
const ACCEPTED_FORMATS = new Set(['jpeg', 'png', 'webp', 'gif', 'tiff', 'heif']);

const CONTENT_TYPES: Record<string, string> = {
  jpeg: 'image/jpeg',
  png: 'image/png',
  webp: 'image/webp',
  gif: 'image/gif',
  tiff: 'image/tiff',
  heif: 'image/avif',
};

export interface ImageInfo {
  format: string;
  contentType: string;
  width: number;
  height: number;
}

/**
 * Decides whether bytes are an image we accept, before anything is stored or queued. In order, each
 * cheaper than the next: the format by content (415), the pixel count from the header (422, so a
 * decompression bomb is refused before it is decoded), then a full decode at reduced size (422),
 * since a truncated or corrupt file passes the header check.
 */
export async function inspectImage(bytes: Buffer, maxPixels: number): Promise<ImageInfo> {
  if (bytes.length === 0) throw new errors.INVALID_IMAGE('the file is empty');

  let meta: Metadata;
  try {
    // Only the header is read here. Without lifting sharp's default pixel limit, a header claiming
    // more than ~268M pixels throws and would be answered as an unsupported format (415), not 422.
    meta = await sharp(bytes, { limitInputPixels: false }).metadata();
  } catch {
    throw new errors.UNSUPPORTED_MEDIA_TYPE(
      `The upload is not an image in an accepted format (${[...ACCEPTED_FORMATS].join(', ')})`,
    );
  }
  if (!ACCEPTED_FORMATS.has(meta.format)) {
    throw new errors.UNSUPPORTED_MEDIA_TYPE(
      `Images in ${meta.format} format are not accepted; send ${[...ACCEPTED_FORMATS].join(', ')}`,
    );
  }
  const { width, height } = meta;
  if (!width || !height) throw new errors.INVALID_IMAGE('the image has no dimensions');
  if (width * height > maxPixels) {
    throw new errors.IMAGE_TOO_LARGE(width, height, width * height, maxPixels);
  }

  try {
    // Shrink-on-load makes a JPEG decode cheaper, but every byte of image data is still read.
    await sharp(bytes, { failOn: 'error', limitInputPixels: maxPixels })
      .resize(64, 64, { fit: 'inside', fastShrinkOnLoad: true })
      .raw()
      .toBuffer();
  } catch (err) {
    throw new errors.INVALID_IMAGE(describeDecodeError(err as Error));
  }
  return { format: meta.format, contentType: CONTENT_TYPES[meta.format]!, width, height };
}

function describeDecodeError(err: Error): string {
  // libvips names the loader and its complaint on the first line ("VipsJpeg: Premature end of
  // input file"); the rest is internals.
  const reason = (err.message.split('\n')[0] ?? '').replace(/^\w+: /, '').trim();
  return `the image data is truncated or corrupt${reason ? ` (${reason})` : ''}`;
}
