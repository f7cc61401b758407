import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import type { InputSpec } from '../../shared/models/model-spec.js';
import { placement, preprocess } from '../../workers/preprocess/preprocess.js';

const LIMITS = { maxPixels: 10_000_000 };

/** An input spec with the registry's defaults, overridden per test. */
function spec(overrides: Partial<InputSpec> & Pick<InputSpec, 'width' | 'height'>): InputSpec {
  return {
    layout: 'NCHW',
    channel_order: 'RGB',
    scale: 1,
    resize: 'stretch',
    pad_value: 0,
    crop_ratio: 0.875,
    ...overrides,
  };
}

type Rgb = readonly [number, number, number];

/** A lossless PNG from rows of RGB pixels. */
async function pngFromPixels(rows: readonly (readonly Rgb[])[]): Promise<Buffer> {
  const height = rows.length;
  const width = rows[0]!.length;
  const raw = Buffer.from(rows.flat(2));
  return sharp(raw, { raw: { width, height, channels: 3 } })
    .png()
    .toBuffer();
}

function solid(width: number, height: number, [r, g, b]: Rgb): Promise<Buffer> {
  return sharp({ create: { width, height, channels: 3, background: { r, g, b } } })
    .png()
    .toBuffer();
}

/** Value of channel c at (x, y) of a [1, C, H, W] or [1, H, W, C] tensor. */
function at(
  result: { data: Float32Array; dims: readonly number[] },
  layout: 'NCHW' | 'NHWC',
  c: number,
  y: number,
  x: number,
): number {
  if (layout === 'NCHW') {
    const [, channels, height, width] = result.dims as [number, number, number, number];
    expect(c).toBeLessThan(channels);
    return result.data[c * height * width + y * width + x]!;
  }
  const [, , width, channels] = result.dims as [number, number, number, number];
  return result.data[(y * width + x) * channels + c]!;
}

const RED: Rgb = [255, 0, 0];
const BLUE: Rgb = [0, 0, 255];

describe('preprocess: normalisation', () => {
  it('applies (pixel * scale - mean) / std per channel', async () => {
    const image = await solid(2, 2, [255, 128, 0]);
    const result = await preprocess(
      image,
      spec({ width: 2, height: 2, scale: 1, mean: [10, 20, 30], std: [2, 4, 5] }),
      LIMITS,
    );
    // (255 - 10) / 2, (128 - 20) / 4, (0 - 30) / 5
    for (let i = 0; i < 4; i++) {
      expect(result.data[i]).toBe(122.5);
      expect(result.data[4 + i]).toBe(27);
      expect(result.data[8 + i]).toBe(-6);
    }
  });

  it('matches ImageNet normalisation of a known colour', async () => {
    const image = await solid(4, 4, [124, 116, 104]);
    const result = await preprocess(
      image,
      spec({
        width: 4,
        height: 4,
        scale: 1 / 255,
        mean: [0.485, 0.456, 0.406],
        std: [0.229, 0.224, 0.225],
      }),
      LIMITS,
    );
    // 124/255 = 0.486275 -> (0.486275 - 0.485) / 0.229 = 0.005566; likewise for G and B.
    expect(at(result, 'NCHW', 0, 0, 0)).toBeCloseTo(0.005566, 5);
    expect(at(result, 'NCHW', 1, 3, 3)).toBeCloseTo(-0.004902, 5);
    expect(at(result, 'NCHW', 2, 2, 1)).toBeCloseTo(0.008192, 5);
  });

  it('without mean and std only scales', async () => {
    const image = await solid(1, 1, [51, 102, 255]);
    const result = await preprocess(image, spec({ width: 1, height: 1, scale: 1 / 255 }), LIMITS);
    expect(Array.from(result.data)).toEqual([Math.fround(0.2), Math.fround(0.4), Math.fround(1)]);
  });

  it('reads 16-bit PNGs as 8-bit values', async () => {
    const raw = new Uint16Array([65535, 32896, 25700, 0, 0, 65535]);
    const image = await sharp(raw, { raw: { width: 2, height: 1, channels: 3 } })
      .toColourspace('rgb16')
      .png()
      .toBuffer();
    expect((await sharp(image).metadata()).depth).toBe('ushort');
    const result = await preprocess(image, spec({ width: 2, height: 1 }), LIMITS);
    expect(Array.from(result.data)).toEqual([255, 0, 128, 0, 100, 255]);
  });
});

describe('preprocess: layout and channel order', () => {
  // 3x2, every value different: pixel (x, y) channel c = 10 * (y * 3 + x) + c + 1.
  const rows: Rgb[][] = [0, 1].map((y) =>
    [0, 1, 2].map((x) => {
      const base = 10 * (y * 3 + x);
      return [base + 1, base + 2, base + 3] as const;
    }),
  );

  it('NCHW puts each channel in its own plane, rows then columns', async () => {
    const image = await pngFromPixels(rows);
    const result = await preprocess(image, spec({ width: 3, height: 2, layout: 'NCHW' }), LIMITS);
    expect(result.dims).toEqual([1, 3, 2, 3]);
    expect(Array.from(result.data)).toEqual([
      ...[1, 11, 21, 31, 41, 51],
      ...[2, 12, 22, 32, 42, 52],
      ...[3, 13, 23, 33, 43, 53],
    ]);
  });

  it('NHWC interleaves the channels of each pixel', async () => {
    const image = await pngFromPixels(rows);
    const result = await preprocess(image, spec({ width: 3, height: 2, layout: 'NHWC' }), LIMITS);
    expect(result.dims).toEqual([1, 2, 3, 3]);
    expect(Array.from(result.data)).toEqual(rows.flat(2));
  });

  it('RGB keeps red first: left red, right blue', async () => {
    const image = await pngFromPixels([[RED, BLUE]]);
    const result = await preprocess(image, spec({ width: 2, height: 1 }), LIMITS);
    expect(Array.from(result.data)).toEqual([255, 0, 0, 0, 0, 255]);
  });

  it('BGR puts blue first, in both layouts', async () => {
    const image = await pngFromPixels([[RED, BLUE]]);
    const nchw = await preprocess(
      image,
      spec({ width: 2, height: 1, channel_order: 'BGR' }),
      LIMITS,
    );
    // planes B, G, R
    expect(Array.from(nchw.data)).toEqual([0, 255, 0, 0, 255, 0]);

    const nhwc = await preprocess(
      image,
      spec({ width: 2, height: 1, channel_order: 'BGR', layout: 'NHWC' }),
      LIMITS,
    );
    expect(Array.from(nhwc.data)).toEqual([0, 0, 255, 255, 0, 0]);
  });

  it('BGR applies each mean and std to its own colour', async () => {
    const image = await solid(1, 1, [200, 100, 50]);
    const result = await preprocess(
      image,
      spec({
        width: 1,
        height: 1,
        channel_order: 'BGR',
        // in model channel order: B, G, R
        mean: [50, 100, 100],
        std: [1, 2, 4],
      }),
      LIMITS,
    );
    expect(Array.from(result.data)).toEqual([0, 0, 25]);
  });

  it('a grey image feeds the same value to all three channels', async () => {
    const image = await sharp(Buffer.from([10, 200]), { raw: { width: 2, height: 1, channels: 1 } })
      .toColourspace('b-w')
      .png()
      .toBuffer();
    expect((await sharp(image).metadata()).channels).toBe(1);
    const result = await preprocess(image, spec({ width: 2, height: 1 }), LIMITS);
    expect(result.dims).toEqual([1, 3, 1, 2]);
    expect(Array.from(result.data)).toEqual([10, 200, 10, 200, 10, 200]);
  });

  it('drops an alpha channel', async () => {
    const image = await sharp({
      create: { width: 2, height: 2, channels: 4, background: { r: 30, g: 60, b: 90, alpha: 1 } },
    })
      .png()
      .toBuffer();
    const result = await preprocess(image, spec({ width: 2, height: 2, layout: 'NHWC' }), LIMITS);
    expect(result.data).toHaveLength(12);
    expect(Array.from(result.data.subarray(0, 3))).toEqual([30, 60, 90]);
  });
});

describe('preprocess: fit_height (PaddleOCR)', () => {
  const paddle = spec({
    width: 192,
    height: 48,
    channel_order: 'BGR',
    resize: 'fit_height',
    scale: 1 / 255,
    mean: [0.5, 0.5, 0.5],
    std: [0.5, 0.5, 0.5],
    pad_value: 127.5,
  });

  it('resizes to height 48 keeping the aspect ratio and pads the right with zeros', async () => {
    // 100x50 -> width min(192, ceil(48 * 100 / 50)) = 96
    const image = await solid(100, 50, [255, 0, 0]);
    const result = await preprocess(image, paddle, LIMITS);
    expect(result.dims).toEqual([1, 3, 48, 192]);
    for (const y of [0, 23, 47]) {
      for (const x of [0, 50, 95]) {
        // BGR: channel 2 is red
        expect(at(result, 'NCHW', 2, y, x)).toBeCloseTo(1, 5);
        expect(at(result, 'NCHW', 0, y, x)).toBeCloseTo(-1, 5);
      }
      for (const x of [96, 150, 191]) {
        for (const c of [0, 1, 2]) expect(at(result, 'NCHW', c, y, x)).toBe(0);
      }
    }
    expect(result.transform).toEqual({
      originalWidth: 100,
      originalHeight: 50,
      scaleX: 0.96,
      scaleY: 0.96,
      padLeft: 0,
      padTop: 0,
    });
  });

  it('caps the width at the input width: no padding for a long line', async () => {
    const image = await solid(1000, 50, [0, 0, 255]);
    const result = await preprocess(image, paddle, LIMITS);
    expect(at(result, 'NCHW', 0, 10, 191)).toBeCloseTo(1, 5);
    expect(result.transform.scaleX).toBeCloseTo(192 / 1000, 10);
  });
});

describe('preprocess: letterbox', () => {
  it('fits 640x480 into 64x64, centred vertically, padded with pad_value', async () => {
    const image = await solid(640, 480, [0, 255, 0]);
    const result = await preprocess(
      image,
      spec({ width: 64, height: 64, resize: 'letterbox', pad_value: 114, scale: 1 / 255 }),
      LIMITS,
    );
    expect(result.dims).toEqual([1, 3, 64, 64]);
    expect(result.transform).toEqual({
      originalWidth: 640,
      originalHeight: 480,
      scaleX: 0.1,
      scaleY: 0.1,
      padLeft: 0,
      padTop: 8,
    });
    const pad = Math.fround(114 / 255);
    for (const y of [0, 7, 56, 63]) {
      for (const c of [0, 1, 2]) {
        expect(at(result, 'NCHW', c, y, 0)).toBe(pad);
        expect(at(result, 'NCHW', c, y, 63)).toBe(pad);
      }
    }
    for (const y of [8, 32, 55]) {
      expect(at(result, 'NCHW', 1, y, 0)).toBe(1);
      expect(at(result, 'NCHW', 0, y, 63)).toBe(0);
    }
  });

  it('pads left and right for a tall image, in NHWC', async () => {
    const image = await solid(30, 60, [255, 255, 255]);
    const result = await preprocess(
      image,
      spec({ width: 64, height: 64, layout: 'NHWC', resize: 'letterbox', pad_value: 0 }),
      LIMITS,
    );
    expect(result.transform.padLeft).toBe(16);
    expect(result.transform.padTop).toBe(0);
    expect(at(result, 'NHWC', 0, 32, 15)).toBe(0);
    expect(at(result, 'NHWC', 0, 32, 16)).toBe(255);
    expect(at(result, 'NHWC', 2, 32, 47)).toBe(255);
    expect(at(result, 'NHWC', 2, 32, 48)).toBe(0);
  });
});

describe('preprocess: center_crop', () => {
  it('resizes the shorter side to size / crop_ratio and keeps the middle', async () => {
    // 300x200 -> scale max(256/300, 256/200) = 1.28 -> 384x256, crop offset (80, 16).
    // Thirds red | green | blue: after resizing, 0-128 red, 128-256 green, 256-384 blue, so the
    // crop (80-304) sees red in columns 0-47, green in 48-175, blue in 176-223.
    const image = await sharp({
      create: { width: 300, height: 200, channels: 3, background: { r: 0, g: 255, b: 0 } },
    })
      .composite([
        { input: await solid(100, 200, RED), left: 0, top: 0 },
        { input: await solid(100, 200, BLUE), left: 200, top: 0 },
      ])
      .png()
      .toBuffer();
    const result = await preprocess(
      image,
      spec({ width: 224, height: 224, resize: 'center_crop', crop_ratio: 0.875 }),
      LIMITS,
    );
    expect(result.dims).toEqual([1, 3, 224, 224]);
    expect(result.transform).toEqual({
      originalWidth: 300,
      originalHeight: 200,
      scaleX: 1.28,
      scaleY: 1.28,
      padLeft: -80,
      padTop: -16,
    });
    const pixel = (x: number, y: number) => [0, 1, 2].map((c) => at(result, 'NCHW', c, y, x));
    expect(pixel(10, 100)).toEqual([255, 0, 0]);
    expect(pixel(112, 0)).toEqual([0, 255, 0]);
    expect(pixel(210, 223)).toEqual([0, 0, 255]);
  });
});

describe('preprocess: stretch', () => {
  it('ignores the aspect ratio and reports both scales', async () => {
    const image = await solid(40, 10, [9, 9, 9]);
    const result = await preprocess(image, spec({ width: 8, height: 8 }), LIMITS);
    expect(result.dims).toEqual([1, 3, 8, 8]);
    expect(result.data.every((v) => v === 9)).toBe(true);
    expect(result.transform).toEqual({
      originalWidth: 40,
      originalHeight: 10,
      scaleX: 0.2,
      scaleY: 0.8,
      padLeft: 0,
      padTop: 0,
    });
  });
});

describe('preprocess: decoding', () => {
  it('applies EXIF orientation before resizing', async () => {
    // Stored 40x20, left half red, right half blue; orientation 6 shows it rotated 90 degrees
    // clockwise: 20x40, red on top.
    const image = await sharp({
      create: { width: 40, height: 20, channels: 3, background: { r: 0, g: 0, b: 255 } },
    })
      .composite([{ input: await solid(20, 20, RED), left: 0, top: 0 }])
      .jpeg({ quality: 95 })
      .withMetadata({ orientation: 6 })
      .toBuffer();
    expect((await sharp(image).metadata()).orientation).toBe(6);

    const result = await preprocess(image, spec({ width: 20, height: 40 }), LIMITS);
    expect(result.transform.originalWidth).toBe(20);
    expect(result.transform.originalHeight).toBe(40);
    expect(result.transform.scaleX).toBe(1);
    expect(result.transform.scaleY).toBe(1);
    // JPEG is lossy: compare the dominant channel.
    expect(at(result, 'NCHW', 0, 5, 10)).toBeGreaterThan(200);
    expect(at(result, 'NCHW', 2, 5, 10)).toBeLessThan(50);
    expect(at(result, 'NCHW', 0, 35, 10)).toBeLessThan(50);
    expect(at(result, 'NCHW', 2, 35, 10)).toBeGreaterThan(200);
  });

  it("sizes a JPEG from its header as sharp's metadata does, for every EXIF orientation", async () => {
    for (const orientation of [1, 2, 3, 4, 5, 6, 7, 8]) {
      const image = await sharp({
        create: { width: 30, height: 10, channels: 3, background: { r: 0, g: 0, b: 255 } },
      })
        .jpeg()
        .withMetadata({ orientation })
        .toBuffer();
      const { autoOrient } = await sharp(image, { autoOrient: true }).metadata();
      const { transform } = await preprocess(image, spec({ width: 8, height: 8 }), LIMITS);
      expect(
        [transform.originalWidth, transform.originalHeight],
        `orientation ${orientation}`,
      ).toEqual([autoOrient.width, autoOrient.height]);
    }
  });

  it('rejects an image with more pixels than the limit', async () => {
    const image = await solid(100, 100, RED);
    await expect(
      preprocess(image, spec({ width: 8, height: 8 }), { maxPixels: 9_999 }),
    ).rejects.toThrow(/pixel limit/i);
    await expect(
      preprocess(image, spec({ width: 8, height: 8 }), { maxPixels: 10_000 }),
    ).resolves.toBeDefined();
  });

  it('rejects a truncated JPEG whose header is intact', async () => {
    const noise = Buffer.alloc(64 * 64 * 3);
    for (let i = 0; i < noise.length; i++) noise[i] = (i * 7919) % 256;
    const jpeg = await sharp(noise, { raw: { width: 64, height: 64, channels: 3 } })
      .jpeg()
      .toBuffer();
    const truncated = jpeg.subarray(0, Math.floor(jpeg.length / 2));
    // The header still reads: only a full decode finds the damage.
    expect((await sharp(truncated).metadata()).width).toBe(64);
    await expect(preprocess(truncated, spec({ width: 8, height: 8 }), LIMITS)).rejects.toThrow();
  });

  it('rejects bytes that are not an image', async () => {
    await expect(
      preprocess(Buffer.from('not an image'), spec({ width: 8, height: 8 }), LIMITS),
    ).rejects.toThrow();
  });
});

describe('placement', () => {
  it('stretch: the whole canvas', () => {
    expect(placement(1000, 10, spec({ width: 64, height: 32 }))).toEqual({
      width: 64,
      height: 32,
      left: 0,
      top: 0,
    });
  });

  it('letterbox: fit inside, centred, rounding down the offset', () => {
    const s = spec({ width: 640, height: 640, resize: 'letterbox' });
    expect(placement(1280, 720, s)).toEqual({ width: 640, height: 360, left: 0, top: 140 });
    expect(placement(720, 1280, s)).toEqual({ width: 360, height: 640, left: 140, top: 0 });
    expect(placement(100, 100, s)).toEqual({ width: 640, height: 640, left: 0, top: 0 });
    // 64x64 canvas, 63 rows of padding: 31 above, 32 below
    expect(placement(10_000, 1, spec({ width: 64, height: 64, resize: 'letterbox' }))).toEqual({
      width: 64,
      height: 1,
      left: 0,
      top: 31,
    });
  });

  it('center_crop: covers the canvas, negative offsets', () => {
    const s = spec({ width: 224, height: 224, resize: 'center_crop', crop_ratio: 0.875 });
    expect(placement(300, 200, s)).toEqual({ width: 384, height: 256, left: -80, top: -16 });
    expect(placement(200, 300, s)).toEqual({ width: 256, height: 384, left: -16, top: -80 });
    expect(placement(10, 10, s)).toEqual({ width: 256, height: 256, left: -16, top: -16 });
    const full = spec({ width: 224, height: 224, resize: 'center_crop', crop_ratio: 1 });
    const wide = placement(448, 224, full);
    expect(wide).toMatchObject({ width: 448, height: 224, left: -112 });
    // -Math.floor(0) is -0, which is as good as 0 for the arithmetic
    expect(wide.top + 0).toBe(0);
  });

  it('center_crop never leaves the canvas uncovered', () => {
    const s = spec({ width: 224, height: 160, resize: 'center_crop', crop_ratio: 0.875 });
    for (const [w, h] of [
      [1, 1],
      [999, 7],
      [7, 999],
      [333, 331],
      [4000, 3000],
    ] as const) {
      const p = placement(w, h, s);
      expect(p.left).toBeLessThanOrEqual(0);
      expect(p.top).toBeLessThanOrEqual(0);
      expect(p.width + p.left).toBeGreaterThanOrEqual(224);
      expect(p.height + p.top).toBeGreaterThanOrEqual(160);
    }
  });

  it('fit_height: height fixed, width by aspect ratio, capped, at least 1', () => {
    const s = spec({ width: 192, height: 48, resize: 'fit_height' });
    expect(placement(100, 50, s)).toEqual({ width: 96, height: 48, left: 0, top: 0 });
    // ceil(48 * 101 / 50) = ceil(96.96) = 97
    expect(placement(101, 50, s)).toEqual({ width: 97, height: 48, left: 0, top: 0 });
    expect(placement(5000, 50, s)).toEqual({ width: 192, height: 48, left: 0, top: 0 });
    expect(placement(1, 5000, s)).toEqual({ width: 1, height: 48, left: 0, top: 0 });
  });
});
