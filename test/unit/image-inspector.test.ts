import { crc32 } from 'node:zlib';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { endsComplete, inspectImage } from '../../api/images/image-inspector.js';
import { damagedTiff } from '../support/inference-stack.js';

const MAX_PIXELS = 40_000_000;

interface CatalogueError {
  code: string;
  statusCode: number;
  message: string;
}

async function rejection(bytes: Buffer, maxPixels = MAX_PIXELS): Promise<CatalogueError> {
  try {
    await inspectImage(bytes, { maxPixels, maxDimension: 100_000 });
  } catch (err) {
    return err as CatalogueError;
  }
  throw new Error('expected the image to be rejected');
}

function solid(width: number, height: number) {
  return sharp({ create: { width, height, channels: 3, background: { r: 200, g: 40, b: 90 } } });
}

/** Pixels that do not compress away, so that cutting the file in half cuts image data. */
function noisy(width: number, height: number) {
  const pixels = Buffer.alloc(width * height * 3);
  for (let i = 0; i < pixels.length; i++) pixels[i] = (i * 7919 + (i >> 5) * 31) % 256;
  return sharp(pixels, { raw: { width, height, channels: 3 } });
}

/** A PNG whose IHDR claims width x height, with a valid CRC; its pixel data stays 4x4. */
async function pngClaiming(width: number, height: number): Promise<Buffer> {
  const png = Buffer.from(await solid(4, 4).png().toBuffer());
  // signature (8), IHDR length (4), "IHDR" (4), width (4), height (4), ... CRC over type + data
  expect(png.toString('latin1', 12, 16)).toBe('IHDR');
  png.writeUInt32BE(width, 16);
  png.writeUInt32BE(height, 20);
  png.writeUInt32BE(crc32(png.subarray(12, 29)), 29);
  return png;
}

describe('inspectImage: accepted formats, by content', () => {
  // Complete JPEG, PNG, GIF and WebP files are sized by a JavaScript header parser, the rest by
  // libvips: both must read the same size, EXIF orientation and odd sizes included.
  it.each(['jpeg', 'png', 'webp', 'gif'] as const)(
    '%s: the header parser reads the size libvips reads',
    async (format) => {
      for (const [width, height] of [
        [1, 1],
        [641, 479],
        [4000, 3],
      ] as const) {
        const bytes = await noisy(width, height)
          .withMetadata({ orientation: 6 })
          .toFormat(format)
          .toBuffer();
        const meta = await sharp(bytes).metadata();
        const info = await inspectImage(bytes, { maxPixels: MAX_PIXELS });
        expect([info.width, info.height]).toEqual([meta.width, meta.height]);
      }
    },
  );

  it.each([
    ['jpeg', 'image/jpeg'],
    ['png', 'image/png'],
    ['webp', 'image/webp'],
    ['gif', 'image/gif'],
    ['tiff', 'image/tiff'],
    ['avif', 'image/avif'],
  ] as const)('%s -> %s', async (format, contentType) => {
    const bytes = await solid(16, 8).toFormat(format).toBuffer();
    const info = await inspectImage(bytes, { maxPixels: MAX_PIXELS });
    expect(info.contentType).toBe(contentType);
    expect(info.width).toBe(16);
    expect(info.height).toBe(8);
  });

  it('goes by the bytes, not by any name or type the upload claimed', async () => {
    // inspectImage only sees bytes: a PNG is a PNG whatever the client declared.
    const png = await solid(3, 3).png().toBuffer();
    expect((await inspectImage(png, { maxPixels: MAX_PIXELS })).format).toBe('png');
    const jpeg = await solid(3, 3).jpeg().toBuffer();
    expect((await inspectImage(jpeg, { maxPixels: MAX_PIXELS })).contentType).toBe('image/jpeg');
  });
});

describe('inspectImage: rejected uploads', () => {
  it('empty: INVALID_IMAGE 422', async () => {
    const err = await rejection(Buffer.alloc(0));
    expect(err.code).toBe('INVALID_IMAGE');
    expect(err.statusCode).toBe(422);
  });

  it('text: UNSUPPORTED_MEDIA_TYPE 415', async () => {
    for (const text of ['hello, this is not an image', '{"image": "base64..."}', '<html></html>']) {
      const err = await rejection(Buffer.from(text));
      expect(err.code, text).toBe('UNSUPPORTED_MEDIA_TYPE');
      expect(err.statusCode).toBe(415);
    }
  });

  it('SVG: 415, although sharp could render it', async () => {
    const svg = Buffer.from(
      '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10" fill="red"/></svg>',
    );
    expect((await sharp(svg).metadata()).format).toBe('svg');
    const err = await rejection(svg);
    expect(err.code).toBe('UNSUPPORTED_MEDIA_TYPE');
    expect(err.statusCode).toBe(415);
  });

  it('a truncated JPEG: INVALID_IMAGE, though its header reads', async () => {
    const jpeg = await noisy(64, 64).jpeg().toBuffer();
    const truncated = jpeg.subarray(0, Math.floor(jpeg.length / 2));
    expect((await sharp(truncated).metadata()).format).toBe('jpeg');
    const err = await rejection(truncated);
    expect(err.code).toBe('INVALID_IMAGE');
    expect(err.statusCode).toBe(422);
  });

  it('a truncated PNG: INVALID_IMAGE', async () => {
    const png = await noisy(64, 64).png().toBuffer();
    const err = await rejection(png.subarray(0, Math.floor(png.length / 2)));
    expect(err.code).toBe('INVALID_IMAGE');
    expect(err.statusCode).toBe(422);
  });

  it('an image cut off inside its header: INVALID_IMAGE, not an unsupported type', async () => {
    const png = await noisy(64, 64).png().toBuffer();
    const jpeg = await noisy(64, 64).jpeg().toBuffer();
    for (const cut of [png.subarray(0, 20), jpeg.subarray(0, 30)]) {
      const err = await rejection(cut);
      expect(err.code).toBe('INVALID_IMAGE');
      expect(err.message).toMatch(/header is corrupt/);
    }
  });

  it('more pixels than the limit: IMAGE_TOO_LARGE 422, with the sizes', async () => {
    const png = await solid(200, 100).png().toBuffer();
    const err = await rejection(png, 19_999);
    expect(err.code).toBe('IMAGE_TOO_LARGE');
    expect(err.statusCode).toBe(422);
    expect(err.message).toContain('200x100');
    expect(err.message).toContain('19999');
    expect((await inspectImage(png, { maxPixels: 20_000 })).width).toBe(200);
  });

  it('the pixel limit is checked from the header, before any decode', async () => {
    // 7000x7000 claimed, 4x4 of data: decoding would fail as corrupt (INVALID_IMAGE), so
    // IMAGE_TOO_LARGE shows the header decided.
    const err = await rejection(await pngClaiming(7000, 7000));
    expect(err.code).toBe('IMAGE_TOO_LARGE');
  });

  it('a decompression bomb header (100000x100000) is IMAGE_TOO_LARGE, at once', async () => {
    // Regression: past sharp's own default pixel limit (~268M) the header read itself threw, and
    // the bomb was answered 415 "not an image in an accepted format".
    const bomb = await pngClaiming(100_000, 100_000);
    const started = performance.now();
    const err = await rejection(bomb);
    expect(performance.now() - started).toBeLessThan(1000);
    expect(err.code).toBe('IMAGE_TOO_LARGE');
    expect(err.statusCode).toBe(422);
    expect(err.message).toContain('100000x100000');
  });
});

describe('inspectImage: hostile files', () => {
  it('a side past maxDimension: IMAGE_TOO_LARGE, even within the pixel limit', async () => {
    const strip = await solid(3000, 2).png().toBuffer();
    await expect(
      inspectImage(strip, { maxPixels: MAX_PIXELS, maxDimension: 2999 }),
    ).rejects.toMatchObject({
      code: 'IMAGE_TOO_LARGE',
      message: 'The image is 3000x2: a side longer than the limit of 2999 pixels',
    });
    await expect(
      inspectImage(strip, { maxPixels: MAX_PIXELS, maxDimension: 3000 }),
    ).resolves.toMatchObject({ width: 3000 });
  });

  it.each([
    ['PDF', Buffer.from('%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n')],
    [
      'an MP4 video (ftyp isom)',
      Buffer.concat([
        Buffer.from('0000001c66747970', 'hex'),
        Buffer.from('isom\0\0\x02\0isomiso2mp41'),
        Buffer.alloc(64),
      ]),
    ],
    ['a BMP', Buffer.concat([Buffer.from('BM'), Buffer.alloc(60)])],
    ['a PPM (netpbm, text header)', Buffer.from(`P6\n4 4\n255\n${'\0'.repeat(48)}`)],
    [
      'SVG with an XML declaration',
      Buffer.from(
        '<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="1" height="1"><image href="file:///etc/passwd"/></svg>',
      ),
    ],
    ['SVG after a byte-order mark', Buffer.from('\ufeff<svg xmlns="http://www.w3.org/2000/svg"/>')],
    ['a ZIP archive', Buffer.from('504b0304140000000800', 'hex')],
  ])('%s: 415 before any decoder sees it', async (_what, bytes) => {
    const err = await rejection(bytes);
    expect(err.code).toBe('UNSUPPORTED_MEDIA_TYPE');
  });

  it('a PNG signature followed by SVG: INVALID_IMAGE (a broken PNG), never rendered as SVG', async () => {
    const polyglot = Buffer.concat([
      Buffer.from('89504e470d0a1a0a', 'hex'),
      Buffer.from(
        '<svg xmlns="http://www.w3.org/2000/svg"><image href="http://169.254.169.254/"/></svg>',
      ),
    ]);
    const err = await rejection(polyglot);
    expect(err.code).toBe('INVALID_IMAGE');
  });

  it('a JPEG with a ZIP appended (a polyglot) is judged as the JPEG it is', async () => {
    const jpeg = await noisy(16, 16).jpeg().toBuffer();
    const polyglot = Buffer.concat([jpeg, Buffer.from('504b030414000000080000000000', 'hex')]);
    await expect(inspectImage(polyglot, { maxPixels: MAX_PIXELS })).resolves.toMatchObject({
      format: 'jpeg',
    });
  });

  it('a TIFF or HEIF is judged by its header, never decoded here (regression: a 117 KB TIFF of 39.7 megapixels cost 150-250 ms of API CPU)', async () => {
    // Damage only a decode finds passes: the worker's decode finds it (INVALID_IMAGE on the job).
    const damaged = await damagedTiff();
    await expect(sharp(damaged, { failOn: 'error' }).raw().toBuffer()).rejects.toThrow();
    await expect(inspectImage(damaged, { maxPixels: MAX_PIXELS })).resolves.toMatchObject({
      format: 'tiff',
      width: 64,
      height: 64,
    });

    // 16 megapixels in a few hundred bytes: decoding it here took about 600 ms of CPU.
    const avif = await solid(4000, 4000).avif({ effort: 0 }).toBuffer();
    expect(avif.length).toBeLessThan(2048);
    const before = process.cpuUsage();
    await expect(inspectImage(avif, { maxPixels: MAX_PIXELS })).resolves.toMatchObject({
      contentType: 'image/avif',
      width: 4000,
    });
    const cpu = process.cpuUsage(before);
    expect((cpu.user + cpu.system) / 1000).toBeLessThan(100);

    // Over the pixel limit: refused from the header alone.
    const tiff = await solid(6300, 6300).tiff({ compression: 'deflate' }).toBuffer();
    expect((await rejection(tiff, 6300 * 6300 - 1)).code).toBe('IMAGE_TOO_LARGE');
  });

  it('an AVIF is told from a video by its ftyp brands', async () => {
    const avif = await solid(8, 8).avif().toBuffer();
    expect(avif.toString('latin1', 4, 8)).toBe('ftyp');
    await expect(inspectImage(avif, { maxPixels: MAX_PIXELS })).resolves.toMatchObject({
      contentType: 'image/avif',
    });
  });
});

describe('endsComplete: the cheap completeness check that spares a decode', () => {
  it('is true for complete JPEG, PNG, GIF and WebP files', async () => {
    for (const format of ['jpeg', 'png', 'gif', 'webp'] as const) {
      const bytes = await noisy(32, 32).toFormat(format).toBuffer();
      expect(endsComplete(format, bytes), format).toBe(true);
    }
  });

  it('is false for the same files cut short', async () => {
    for (const format of ['jpeg', 'png', 'gif', 'webp'] as const) {
      const bytes = await noisy(32, 32).toFormat(format).toBuffer();
      expect(endsComplete(format, bytes.subarray(0, bytes.length - 7)), format).toBe(false);
    }
  });

  it('a JPEG with bytes after its end marker is decoded to decide, and accepted', async () => {
    const jpeg = await noisy(32, 32).jpeg().toBuffer();
    const trailed = Buffer.concat([jpeg, Buffer.from('camera trailer data')]);
    expect(endsComplete('jpeg', trailed)).toBe(false);
    await expect(inspectImage(trailed, { maxPixels: MAX_PIXELS })).resolves.toMatchObject({
      format: 'jpeg',
    });
  });
});
