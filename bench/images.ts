import { randomBytes } from 'node:crypto';
import sharp from 'sharp';
import { noisyJpeg, renderTextLine } from '../test/fixtures/images.js';

export const IMAGE_NAMES = ['photo', 'text-line'] as const;
export type ImageName = (typeof IMAGE_NAMES)[number];

/** One of the benchmark's images, as the JPEG every request of its phases starts from. */
export interface BenchImage {
  name: ImageName;
  description: string;
  width: number;
  height: number;
  jpeg: Buffer;
}

/** The text of the text-line crop: rendered about 470x50 px, squeezed to 400x48. */
const TEXT_LINE = 'Invoice 2026-03 total: 1,284.50';

export async function loadBenchImage(name: ImageName): Promise<BenchImage> {
  const jpeg =
    name === 'photo'
      ? await noisyJpeg(640, 480)
      : await sharp(await renderTextLine(TEXT_LINE, 'png'))
          .resize(400, 48, { fit: 'fill' })
          .jpeg({ quality: 90 })
          .toBuffer();
  const { width = 0, height = 0 } = await sharp(jpeg).metadata();
  const kb = (jpeg.length / 1024).toFixed(1);
  const what = name === 'photo' ? 'noisy photo' : 'text-line crop';
  return { name, description: `${width}x${height} JPEG ${what}, ${kb} KB`, width, height, jpeg };
}

/**
 * Distinct bytes for every request, so the gateway's content-addressed storage (a key from the
 * sha256 of the bytes) has to write each one: a JPEG comment segment (COM, 0xFFFE) with a run id
 * and a counter, right after the start-of-image marker. Decoders skip comments, so the pixels and
 * the inference are the same; the cost is one copy of the image.
 */
/** The JPEG {@link UniqueJpegs.next} was given: its mark (the comment after SOI) taken out. */
export function withoutUniqueMark(jpeg: Buffer): Buffer {
  if (jpeg[2] !== 0xff || jpeg[3] !== 0xfe) return jpeg;
  const length = jpeg.readUInt16BE(4);
  return Buffer.concat([jpeg.subarray(0, 2), jpeg.subarray(4 + length)]);
}

export class UniqueJpegs {
  private readonly run = randomBytes(6).toString('hex');
  private counter = 0;

  next(jpeg: Buffer): Buffer {
    if (jpeg[0] !== 0xff || jpeg[1] !== 0xd8) throw new Error('not a JPEG: no SOI marker');
    const text = Buffer.from(`bench ${this.run} ${++this.counter}`, 'latin1');
    const segment = Buffer.allocUnsafe(4 + text.length);
    segment.writeUInt16BE(0xfffe, 0);
    // The length counts itself (2 bytes) and the payload, not the marker.
    segment.writeUInt16BE(2 + text.length, 2);
    text.copy(segment, 4);
    return Buffer.concat([jpeg.subarray(0, 2), segment, jpeg.subarray(2)]);
  }
}
