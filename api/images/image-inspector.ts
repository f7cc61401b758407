import { imageSize } from 'image-size';
import sharp from 'sharp';
import { errors } from '../http/errors.js';

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

/** ISO BMFF brands of still images (AVIF, HEIF): not MP4 or QuickTime video, which share `ftyp`. */
const IMAGE_BRANDS = new Set([
  'avif',
  'avis',
  'heic',
  'heix',
  'heim',
  'heis',
  'hevc',
  'hevx',
  'mif1',
  'msf1',
]);

function hasImageSignature(bytes: Buffer): boolean {
  const hex = bytes.subarray(0, 16).toString('hex');
  const match = SIGNATURES.find(([offset, signature]) => hex.startsWith(signature, offset * 2));
  if (!match) return false;
  return match[1] !== '66747970' || hasImageBrand(bytes);
}

/** The `ftyp` box's major brand or one of its compatible brands names a still-image format. */
function hasImageBrand(bytes: Buffer): boolean {
  if (bytes.length < 12) return false;
  const end = Math.min(bytes.readUInt32BE(0), bytes.length, 256);
  for (let at = 8; at + 4 <= end; at += at === 8 ? 8 : 4) {
    if (IMAGE_BRANDS.has(bytes.toString('latin1', at, at + 4))) return true;
  }
  return false;
}

/**
 * Formats with a cheap completeness check ({@link endsComplete}): only these are decoded here, and
 * only when they fail it. TIFF and HEIF have none, and decoding them here cost up to 0.6 s of CPU
 * for a few hundred bytes (an AVIF of 16 megapixels): the worker's decode, which happens anyway
 * under the same pixel limit, finds their damage instead (INVALID_IMAGE on the job).
 */
const END_CHECKED_FORMATS = new Set(['jpeg', 'png', 'gif', 'webp']);

/** Formats whose header a plain parser reads (image-size): no decoder is started to size them. */
const HEADER_FORMATS: Record<string, string> = {
  jpg: 'jpeg',
  png: 'png',
  gif: 'gif',
  webp: 'webp',
};

/** What the header says: the format (sharp's names) and the size. */
interface Header {
  format: string;
  width: number | undefined;
  height: number | undefined;
  /** Set for HEIF files: `av1` marks AVIF. */
  compression?: string;
}

export interface ImageInfo {
  format: string;
  contentType: string;
  width: number;
  height: number;
}

/** What an accepted image may be: `maxDimension` bounds the width and the height on their own. */
export interface ImageLimits {
  maxPixels: number;
  /** @defaultValue no bound beyond `maxPixels` */
  maxDimension?: number;
}

/**
 * Decides whether bytes are an image we accept, before anything is stored or queued. In order, each
 * cheaper than the next: the format by content (415): the leading bytes must be those of an
 * accepted format before any decoder sees the file, so SVG, PDF, HTML or a video never reach one;
 * the size from the header (422, so a decompression bomb is refused before it is decoded), then
 * completeness (422): a truncated file passes the header check, so a JPEG, PNG, GIF or WebP file
 * that does not end as it must is fully decoded to decide. A complete one is not decoded here, nor
 * is a TIFF or HEIF file: the worker decodes it anyway, and damage inside the data still fails its
 * job with INVALID_IMAGE.
 */
export async function inspectImage(bytes: Buffer, limits: ImageLimits): Promise<ImageInfo> {
  const { maxPixels, maxDimension = Number.POSITIVE_INFINITY } = limits;
  if (bytes.length === 0) throw new errors.INVALID_IMAGE('the file is empty');
  if (!hasImageSignature(bytes)) {
    throw new errors.UNSUPPORTED_MEDIA_TYPE(
      `The upload is not an image in an accepted format (${[...ACCEPTED_FORMATS].join(', ')})`,
    );
  }

  const meta = await readHeader(bytes);
  if (!ACCEPTED_FORMATS.has(meta.format)) {
    throw new errors.UNSUPPORTED_MEDIA_TYPE(
      `Images in ${meta.format} format are not accepted; send ${[...ACCEPTED_FORMATS].join(', ')}`,
    );
  }
  const { width, height } = meta;
  if (!width || !height) throw new errors.INVALID_IMAGE('the image has no dimensions');
  if (width * height > maxPixels) {
    throw new errors.IMAGE_TOO_LARGE(
      width,
      height,
      `${width * height} pixels, more than the limit of ${maxPixels} pixels`,
    );
  }
  if (width > maxDimension || height > maxDimension) {
    throw new errors.IMAGE_TOO_LARGE(
      width,
      height,
      `a side longer than the limit of ${maxDimension} pixels`,
    );
  }

  if (!END_CHECKED_FORMATS.has(meta.format) || endsComplete(meta.format, bytes)) {
    return info(meta, width, height);
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
  return info(meta, width, height);
}

/**
 * The format and size from the file's header. A complete JPEG, PNG, GIF or WebP file (the common
 * upload) has its header parsed in JavaScript: microseconds, where starting libvips costs a few
 * hundred. Anything else (TIFF, HEIF/AVIF, a file that does not end as it must, a header the
 * parser cannot read) goes to sharp. Only the header is read either way.
 */
async function readHeader(bytes: Buffer): Promise<Header> {
  let parsed: ReturnType<typeof imageSize> | undefined;
  try {
    parsed = imageSize(bytes);
  } catch {
    // Unknown to the parser, or a header it cannot read: sharp decides below.
  }
  const format = parsed?.type ? HEADER_FORMATS[parsed.type] : undefined;
  if (parsed && format && endsComplete(format, bytes)) {
    return { format, width: parsed.width, height: parsed.height };
  }
  try {
    // Without lifting sharp's default pixel limit, a header claiming more than ~268M pixels
    // throws and would be answered as a corrupt image, not as too large.
    const meta = await sharp(bytes, { limitInputPixels: false }).metadata();
    return {
      format: meta.format,
      width: meta.width,
      height: meta.height,
      compression: meta.compression,
    };
  } catch {
    // The file starts like one of our formats but its header does not parse: a damaged image,
    // not a different kind of file.
    throw new errors.INVALID_IMAGE('the image header is corrupt');
  }
}

function info(meta: Header, width: number, height: number): ImageInfo {
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
