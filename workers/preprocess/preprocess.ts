import { imageSize } from 'image-size';
import sharp, { type SharpOptions } from 'sharp';
import type { InputSpec } from '../../shared/models/model-spec.js';
import type { ImageTransform } from '../postprocess/output-tensor.js';

/** One image as the model's input: a float32 tensor of dims [1, C, H, W] or [1, H, W, C]. */
export interface PreprocessedImage {
  data: Float32Array;
  dims: [number, number, number, number];
  transform: ImageTransform;
}

interface Placement {
  /** Size the image is resized to before it is placed on the input canvas. */
  width: number;
  height: number;
  /** Offset of the resized image on the canvas (negative: cropped). */
  left: number;
  top: number;
}

const CHANNELS = 3;

/**
 * Decodes an image and turns it into the model's input tensor, as its registry entry says:
 * EXIF orientation applied, resized by `spec.resize`, channels in `spec.channel_order`,
 * `(pixel * scale - mean) / std`, laid out as `spec.layout`. Padding is filled with `pad_value`
 * normalised the same way. The returned transform maps original pixels to input pixels, so that
 * detection boxes can be mapped back.
 */
export async function preprocess(
  image: Buffer,
  spec: InputSpec,
  limits: { maxPixels: number },
): Promise<PreprocessedImage> {
  const options = {
    autoOrient: true,
    failOn: 'error',
    limitInputPixels: limits.maxPixels,
  } as const;
  const original = await orientedSize(image, options);
  const place = placement(original.width, original.height, spec);

  let pipeline = sharp(image, options)
    .resize(place.width, place.height, { fit: 'fill' })
    .removeAlpha()
    .toColourspace('srgb');
  if (place.left < 0 || place.top < 0) {
    // center_crop: the resized image covers the canvas; cut the canvas-sized middle out of it.
    pipeline = pipeline.extract({
      left: -place.left,
      top: -place.top,
      width: spec.width,
      height: spec.height,
    });
  }
  const { data: pixels, info } = await pipeline.raw().toBuffer({ resolveWithObject: true });
  const visible = { width: info.width, height: info.height };
  const offset = { left: Math.max(place.left, 0), top: Math.max(place.top, 0) };

  const data = toTensor(pixels, info.channels, visible, offset, spec);
  return {
    data,
    dims:
      spec.layout === 'NCHW'
        ? [1, CHANNELS, spec.height, spec.width]
        : [1, spec.height, spec.width, CHANNELS],
    transform: transformOf(original, place),
  };
}

/**
 * Where the image would land in the model input, read from its header without decoding it: for a
 * model whose server decodes and resizes the image itself, by the same input spec.
 */
export async function describeTransform(
  image: Buffer,
  spec: InputSpec,
  limits: { maxPixels: number },
): Promise<ImageTransform> {
  const original = await orientedSize(image, {
    autoOrient: true,
    limitInputPixels: limits.maxPixels,
  });
  return transformOf(original, placement(original.width, original.height, spec));
}

/** EXIF orientations that turn the image a quarter: its width and height trade places. */
const QUARTER_TURNS = new Set([5, 6, 7, 8]);

/**
 * The image's size as it is shown (EXIF orientation applied), from its header. A JPEG's header is
 * read by image-size, orientation included (about 20 µs, against 0.3 ms of CPU for sharp's
 * `metadata()`, a second libvips pipeline per image); anything else, or a JPEG it cannot size, by
 * sharp. Either way the decode that follows is sharp's, with the same limits and checks.
 */
async function orientedSize(
  image: Buffer,
  options: SharpOptions,
): Promise<{ width: number; height: number }> {
  if (image[0] === 0xff && image[1] === 0xd8) {
    try {
      const { width, height, orientation } = imageSize(image);
      if (width > 0 && height > 0) {
        return QUARTER_TURNS.has(orientation ?? 1)
          ? { width: height, height: width }
          : { width, height };
      }
    } catch {
      // Not a header image-size reads (an unusual JPEG process): sharp decides.
    }
  }
  const { autoOrient } = await sharp(image, options).metadata();
  return autoOrient;
}

function transformOf(
  original: { width: number; height: number },
  place: Placement,
): ImageTransform {
  return {
    originalWidth: original.width,
    originalHeight: original.height,
    scaleX: place.width / original.width,
    scaleY: place.height / original.height,
    padLeft: place.left,
    padTop: place.top,
  };
}

export function placement(width: number, height: number, spec: InputSpec): Placement {
  switch (spec.resize) {
    case 'stretch':
      return { width: spec.width, height: spec.height, left: 0, top: 0 };
    case 'letterbox': {
      const scale = Math.min(spec.width / width, spec.height / height);
      const w = Math.max(1, Math.round(width * scale));
      const h = Math.max(1, Math.round(height * scale));
      return {
        width: w,
        height: h,
        left: Math.floor((spec.width - w) / 2),
        top: Math.floor((spec.height - h) / 2),
      };
    }
    case 'center_crop': {
      // ImageNet style: the shorter side to size / crop_ratio (224 -> 256), then the middle.
      const scale = Math.max(
        spec.width / spec.crop_ratio / width,
        spec.height / spec.crop_ratio / height,
      );
      const w = Math.max(spec.width, Math.round(width * scale));
      const h = Math.max(spec.height, Math.round(height * scale));
      return {
        width: w,
        height: h,
        left: -Math.floor((w - spec.width) / 2),
        top: -Math.floor((h - spec.height) / 2),
      };
    }
    case 'fit_height': {
      // PaddleOCR's resize_norm_img: height fixed, width by aspect ratio up to the input width.
      const w = Math.min(spec.width, Math.ceil((spec.height * width) / height));
      return { width: Math.max(1, w), height: spec.height, left: 0, top: 0 };
    }
  }
}

/** Per-channel lookup tables: 256 normalised values each, in model channel order. */
function normalisationTables(spec: InputSpec): Float32Array[] {
  const mean = spec.mean ?? [0, 0, 0];
  const std = spec.std ?? [1, 1, 1];
  return [0, 1, 2].map((c) => {
    const table = new Float32Array(257);
    for (let v = 0; v < 256; v++) table[v] = (v * spec.scale - mean[c]!) / std[c]!;
    // Slot 256 holds the padding value.
    table[256] = (spec.pad_value * spec.scale - mean[c]!) / std[c]!;
    return table;
  });
}

function toTensor(
  pixels: Buffer,
  pixelChannels: number,
  visible: { width: number; height: number },
  offset: { left: number; top: number },
  spec: InputSpec,
): Float32Array {
  const { width: W, height: H } = spec;
  const plane = W * H;
  const tables = normalisationTables(spec);
  const data = new Float32Array(plane * CHANNELS);
  const nchw = spec.layout === 'NCHW';
  // Source channel for each model channel: RGB keeps the order, BGR reverses it. A one-channel
  // (grey) decode feeds the same value to all three.
  const source = (c: number) =>
    pixelChannels === 1 ? 0 : spec.channel_order === 'BGR' ? 2 - c : c;

  // Per row: padding left of the image, the image's pixels, padding right of it (the bounds worked
  // out once per row, not tested per pixel: this loop runs for every value of every input).
  const step = nchw ? 1 : CHANNELS;
  const x0 = Math.min(W, Math.max(0, offset.left));
  const x1 = Math.min(W, Math.max(0, offset.left + visible.width));
  for (let c = 0; c < CHANNELS; c++) {
    const table = tables[c]!;
    const pad = table[256]!;
    const from = source(c);
    for (let y = 0; y < H; y++) {
      const sy = y - offset.top;
      let out = nchw ? c * plane + y * W : y * W * CHANNELS + c;
      if (sy < 0 || sy >= visible.height) {
        for (let x = 0; x < W; x++, out += step) data[out] = pad;
        continue;
      }
      let x = 0;
      for (; x < x0; x++, out += step) data[out] = pad;
      let at = (sy * visible.width + (x0 - offset.left)) * pixelChannels + from;
      for (; x < x1; x++, out += step, at += pixelChannels) data[out] = table[pixels[at]!]!;
      for (; x < W; x++, out += step) data[out] = pad;
    }
  }
  return data;
}
