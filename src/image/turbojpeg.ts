/**
 * libjpeg-turbo's TurboJPEG API through Deno FFI: JPEG -> RGB with the accurate (ISLOW) DCT and fancy
 * upsampling, TurboJPEG's defaults and what libvips and OpenCV decode with, so the pixels are theirs. TurboJPEG
 * catches libjpeg's errors itself (a call returns -1) where the raw libjpeg API's default handler calls exit(),
 * which is what makes it safe for hostile uploads over FFI.
 */

/** The library's soname: Debian's `libturbojpeg0` package (libjpeg-turbo 2.x). */
export const TURBOJPEG_SONAME = "libturbojpeg.so.0";

/** TJPF_RGB: 3 bytes a pixel, R G B, as RgbImage holds them. */
const TJPF_RGB = 0;
/**
 * TJFLAG_STOPONWARNING: give up at libjpeg's first warning (corrupt or truncated data) instead of decoding on
 * and filling the rest with grey; the caller hands such files to the other decoder, whose verdict stands.
 */
const TJFLAG_STOPONWARNING = 8192;

/** TJCS_*: the JPEG's colour space as its header declares it. */
export const TJCS = { rgb: 0, ycbcr: 1, gray: 2, cmyk: 3, ycck: 4 } as const;

const SYMBOLS = {
  tjInitDecompress: { parameters: [], result: "pointer" },
  // handle, jpegBuf, jpegSize, &width, &height, &jpegSubsamp, &jpegColorspace
  tjDecompressHeader3: {
    parameters: ["pointer", "buffer", "u64", "buffer", "buffer", "buffer", "buffer"],
    result: "i32",
  },
  // handle, jpegBuf, jpegSize, dstBuf, width, pitch, height, pixelFormat, flags. On a thread of its own: a
  // ~5 ms decode would otherwise hold the event loop that answers the other requests.
  tjDecompress2: {
    parameters: ["pointer", "buffer", "u64", "buffer", "i32", "i32", "i32", "i32", "i32"],
    result: "i32",
    nonblocking: true,
  },
} as const;

/** What tjDecompressHeader3 read from a JPEG. */
export interface TurboJpegHeader {
  width: number;
  height: number;
  /** One of TJCS. */
  colorspace: number;
}

/** An opened libturbojpeg: header reads and RGB decodes, any number at once. */
export class TurboJpeg {
  /** Decompressor handles not in use; a handle serves one call at a time, so concurrent decodes take one each. */
  readonly #idle: Deno.PointerValue[] = [];

  constructor(private readonly lib: Deno.DynamicLibrary<typeof SYMBOLS>, readonly path: string) {}

  #take(): Deno.PointerValue {
    const handle = this.#idle.pop() ?? this.lib.symbols.tjInitDecompress();
    if (handle === null) throw new Error("tjInitDecompress failed (out of memory)");
    return handle;
  }

  /** The frame's size and colour space, or null where TurboJPEG cannot read the header. */
  header(jpeg: Uint8Array): TurboJpegHeader | null {
    const handle = this.#take();
    try {
      const fields = new Int32Array(4);
      const field = (i: number) => new Uint8Array(fields.buffer, i * 4, 4);
      const rc = this.lib.symbols.tjDecompressHeader3(
        handle,
        jpeg,
        BigInt(jpeg.length),
        field(0),
        field(1),
        field(2),
        field(3),
      );
      if (rc !== 0) return null;
      return { width: fields[0], height: fields[1], colorspace: fields[3] };
    } finally {
      this.#idle.push(handle);
    }
  }

  /**
   * Decodes into `width` x `height` RGB (the size header() read), off the JS thread. Null at the first error or
   * warning (corrupt, truncated or unsupported data): the caller decides what such a file gets.
   */
  async decodeRgb(jpeg: Uint8Array, width: number, height: number): Promise<Uint8Array | null> {
    const pixels = new Uint8Array(width * height * 3);
    const handle = this.#take();
    try {
      const rc = await this.lib.symbols.tjDecompress2(
        handle,
        jpeg,
        BigInt(jpeg.length),
        pixels,
        width,
        width * 3,
        height,
        TJPF_RGB,
        TJFLAG_STOPONWARNING,
      );
      return rc === 0 ? pixels : null;
    } finally {
      this.#idle.push(handle);
    }
  }
}

/** Opens libturbojpeg at `path` (a soname the loader resolves, or a file); the reason where it cannot. */
export function openTurboJpeg(path: string = TURBOJPEG_SONAME): TurboJpeg | { missing: string } {
  try {
    return new TurboJpeg(Deno.dlopen(path, SYMBOLS), path);
  } catch (err) {
    return { missing: (err as Error).message };
  }
}
