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

const DECOMPRESS = {
  parameters: ["pointer", "buffer", "u64", "buffer", "i32", "i32", "i32", "i32", "i32"],
  result: "i32",
} as const;

/**
 * Images from this many pixels up decode on a thread of their own; smaller ones on the JS thread. Handing a
 * call to another thread and back cost more than it saved for bus.jpg (810x1080, ~5 ms): under load the woken
 * thread waits for a core (detect_e2e's decode stage 12-17 ms against 6-8 on the JS thread, alternating runs on
 * the shared box) and the server's onnxruntime runs already take every core, so there is none to overlap on
 * (detect_throughput: the same CPU per request, req/s within the noise). From 4 MP a decode holds the event
 * loop past the ~25 ms of an inference run (a 40 MP upload: ~250 ms), and /readyz, /metrics and the other
 * requests should not wait that long.
 */
export const OFF_THREAD_PIXELS = 1 << 22;

const SYMBOLS = {
  tjInitDecompress: { parameters: [], result: "pointer" },
  // handle, jpegBuf, jpegSize, &width, &height, &jpegSubsamp, &jpegColorspace
  tjDecompressHeader3: {
    parameters: ["pointer", "buffer", "u64", "buffer", "buffer", "buffer", "buffer"],
    result: "i32",
  },
  // handle, jpegBuf, jpegSize, dstBuf, width, pitch, height, pixelFormat, flags: on the JS thread, and the same
  // call on a thread of its own (see OFF_THREAD_PIXELS).
  tjDecompress2: DECOMPRESS,
  tjDecompress2OffThread: { ...DECOMPRESS, name: "tjDecompress2", nonblocking: true },
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
   * Decodes into `width` x `height` RGB (the size header() read), large images off the JS thread
   * (OFF_THREAD_PIXELS). Null at the first error or warning (corrupt, truncated or unsupported data): the
   * caller decides what such a file gets.
   */
  async decodeRgb(jpeg: Uint8Array, width: number, height: number): Promise<Uint8Array | null> {
    const pixels = new Uint8Array(width * height * 3);
    const handle = this.#take();
    try {
      const decompress = width * height >= OFF_THREAD_PIXELS
        ? this.lib.symbols.tjDecompress2OffThread
        : this.lib.symbols.tjDecompress2;
      const rc = await decompress(
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
