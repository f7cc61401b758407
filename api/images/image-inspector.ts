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
  heif: 'image/heif',
};

/** Leading bytes of the accepted formats (ISO BMFF `ftyp` boxes for AVIF/HEIF at offset 4). */
const SIGNATURES: [offset: number, bytes: string][] = [
  [0, 'ffd8ff'], // JPEG
  [0, '89504e470d0a1a0a'], // PNG
  [0, '474946383'], // GIF8
  [0, '49492a00'], // TIFF, little-endian
  [0, '4d4d002a'], // TIFF, big-endian
  [8, '57454250'], // WEBP (after RIFF....)
  [4, '66747970'], // ftyp
];

function hasImageSignature(bytes: Buffer): boolean {
  const hex = bytes.subarray(0, 16).toString('hex');
  return SIGNATURES.some(([offset, signature]) => hex.startsWith(signature, offset * 2));
}

export interface ImageInfo {
  format: string;
  contentType: string;
  width: number;
  height: number;
}

/**
 * Decides whether bytes are an image we accept, before anything is stored or queued. In order, each
 * cheaper than the next: the format by content (415), the pixel count from the header (422, so a
 * decompression bomb is refused before it is decoded), then completeness (422): a truncated file
 * passes the header check, so a file whose container does not end as it must is fully decoded to
 * decide. A complete JPEG or PNG is not decoded here: the worker decodes it anyway, and damage
 * inside the data still fails its job with INVALID_IMAGE.
 */
export async function inspectImage(bytes: Buffer, maxPixels: number): Promise<ImageInfo> {
  if (bytes.length === 0) throw new errors.INVALID_IMAGE('the file is empty');

  let meta: Metadata;
  try {
    // Only the header is read here. Without lifting sharp's default pixel limit, a header claiming
    // more than ~268M pixels throws and would be answered as an unsupported format (415), not 422.
    meta = await sharp(bytes, { limitInputPixels: false }).metadata();
  } catch {
    // The file starts like one of our formats but its header does not parse: a damaged image,
    // not a different kind of file.
    if (hasImageSignature(bytes)) throw new errors.INVALID_IMAGE('the image header is corrupt');
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

  if (endsComplete(meta.format, bytes)) return info(meta, width, height);
  try {
    // Shrink-on-load makes a JPEG decode cheaper, but every byte of image data is still read.
    await sharp(bytes, { failOn: 'error', limitInputPixels: maxPixels })
      .resize(64, 64, { fit: 'inside', fastShrinkOnLoad: true })
      .raw()
      .toBuffer();
  } catch (err) {
    throw new errors.INVALID_IMAGE(describeDecodeError(err as Error));
  }
  return info(meta, width, height);
}

function info(meta: Metadata, width: number, height: number): ImageInfo {
  const contentType = meta.compression === 'av1' ? 'image/avif' : CONTENT_TYPES[meta.format]!;
  return { format: meta.format, contentType, width, height };
}

const PNG_IEND = Buffer.from('0000000049454e44ae426082', 'hex');

/**
 * Whether the file ends the way a complete file of its format must: JPEG with its EOI marker, PNG
 * with its IEND chunk, GIF with its trailer, WebP with as many bytes as its RIFF header declares.
 * False means "not sure" (trailing bytes, or a format without such a check), not "broken".
 */
export function endsComplete(format: string, bytes: Buffer): boolean {
  const n = bytes.length;
  switch (format) {
    case 'jpeg':
      return n > 4 && bytes[n - 2] === 0xff && bytes[n - 1] === 0xd9;
    case 'png':
      return n > 20 && bytes.subarray(n - 12).equals(PNG_IEND);
    case 'gif':
      return bytes[n - 1] === 0x3b;
    case 'webp':
      return n >= 12 && bytes.readUInt32LE(4) + 8 === n;
    default:
      return false;
  }
}

function describeDecodeError(err: Error): string {
  // libvips names the loader and its complaint on the first line ("VipsJpeg: Premature end of
  // input file"); the rest is internals.
  const reason = (err.message.split('\n')[0] ?? '').replace(/^\w+: /, '').trim();
  return `the image data is truncated or corrupt${reason ? ` (${reason})` : ''}`;
}
