/**
 * A streaming multipart/form-data reader for large uploads: the named file fields are written straight to disk
 * as the body arrives, so memory stays bounded whatever the upload's size (Request.formData() and Hono's body
 * limit both hold the whole body in memory). Other fields are read as text up to a small cap. The body's total
 * size is counted as it streams, for bodies sent without a Content-Length.
 */
import { join } from "node:path";
import { ApiError } from "./errors.ts";

export interface StreamedForm {
  /** text fields (also those sent as small files), by name */
  fields: Map<string, string>;
  /** the file fields written to disk: name -> path */
  files: Map<string, string>;
}

export interface StreamOptions {
  /** where file fields are written, as `<dir>/<field name>` */
  dir: string;
  /** the fields to write to disk; every other one is read as text */
  fileFields: readonly string[];
  /** largest body accepted; more answers 413 */
  maxBytes: number;
  tooLargeMessage: string;
  /** largest text field accepted */
  maxFieldBytes: number;
}

/** Part headers longer than this are not a form's (a browser's are ~150 bytes). */
const MAX_HEADER_BYTES = 16 * 1024;
const CRLF = new Uint8Array([13, 10]);
const HEADER_END = new Uint8Array([13, 10, 13, 10]);
const enc = new TextEncoder();
const dec = new TextDecoder();

const malformed = (why: string) => new ApiError(400, "invalid_body", `Malformed multipart body: ${why}`);

/** Reads a multipart/form-data request; throws ApiError 400 (malformed), 413 (too large). */
export async function streamMultipart(request: Request, opts: StreamOptions): Promise<StreamedForm> {
  const boundary = /;\s*boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(request.headers.get("content-type") ?? "");
  if (!boundary) throw malformed("the Content-Type has no boundary");
  const form: StreamedForm = { fields: new Map(), files: new Map() };
  const parser = new PartParser(enc.encode(`\r\n--${boundary[1] ?? boundary[2]}`), form, opts);
  const reader = request.body?.getReader();
  if (!reader) throw malformed("there is no body");
  let total = 0;
  try {
    // The body's first boundary has no CRLF before it; the delimiter the parser looks for does.
    await parser.push(CRLF);
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.length;
      if (total > opts.maxBytes) throw new ApiError(413, "payload_too_large", opts.tooLargeMessage);
      await parser.push(value);
    }
    parser.finish();
    return form;
  } catch (err) {
    await reader.cancel().catch(() => {});
    throw err;
  } finally {
    parser.closeFile();
  }
}

/** The multipart grammar as a push parser: preamble, then per part headers and a body, then the close. */
class PartParser {
  private state: "preamble" | "after-boundary" | "headers" | "body" | "done" = "preamble";
  private pending: Uint8Array = new Uint8Array(0);
  private text: Uint8Array[] | null = null;
  private textBytes = 0;
  private file: Deno.FsFile | null = null;
  private fieldName = "";

  constructor(
    private readonly delimiter: Uint8Array,
    private readonly form: StreamedForm,
    private readonly opts: StreamOptions,
  ) {}

  async push(chunk: Uint8Array): Promise<void> {
    this.pending = concat(this.pending, chunk);
    for (;;) {
      if (this.state === "done") {
        this.pending = new Uint8Array(0); // the epilogue is ignored
        return;
      }
      if (this.state === "after-boundary") {
        if (this.pending.length < 2) return;
        const next = dec.decode(this.pending.subarray(0, 2));
        if (next !== "--" && next !== "\r\n") {
          throw malformed("a boundary is followed by neither CRLF nor '--'");
        }
        this.pending = this.pending.subarray(2);
        this.state = next === "--" ? "done" : "headers";
        continue;
      }
      if (this.state === "headers") {
        const end = indexOf(this.pending, HEADER_END);
        if (end < 0) {
          if (this.pending.length > MAX_HEADER_BYTES) throw malformed("part headers are too long");
          return;
        }
        await this.startPart(dec.decode(this.pending.subarray(0, end)));
        this.pending = this.pending.subarray(end + HEADER_END.length);
        this.state = "body";
        continue;
      }
      // preamble or body: everything up to the next delimiter belongs to it
      const at = indexOf(this.pending, this.delimiter);
      const keep = at >= 0 ? at : Math.max(0, this.pending.length - this.delimiter.length + 1);
      if (this.state === "body") await this.take(this.pending.subarray(0, keep));
      if (at < 0) {
        this.pending = this.pending.slice(keep);
        return;
      }
      if (this.state === "body") this.endPart();
      this.pending = this.pending.subarray(at + this.delimiter.length);
      this.state = "after-boundary";
    }
  }

  finish(): void {
    if (this.state !== "done") throw malformed("the body ended before the closing boundary");
  }

  closeFile(): void {
    this.file?.close();
    this.file = null;
  }

  private async startPart(headers: string): Promise<void> {
    const disposition = /^content-disposition:\s*form-data\s*;(.*)$/im.exec(headers);
    const name = disposition && /(?:^|;)\s*name="([^"]*)"/i.exec(disposition[1]);
    if (!name) throw malformed("a part has no Content-Disposition: form-data name");
    this.fieldName = name[1];
    if (this.form.fields.has(this.fieldName) || this.form.files.has(this.fieldName)) {
      throw malformed(`field '${this.fieldName}' is sent twice`);
    }
    if (this.opts.fileFields.includes(this.fieldName)) {
      const path = join(this.opts.dir, this.fieldName);
      this.file = await Deno.open(path, { write: true, createNew: true });
      this.form.files.set(this.fieldName, path);
    } else {
      this.text = [];
      this.textBytes = 0;
    }
  }

  private async take(bytes: Uint8Array): Promise<void> {
    if (this.file) {
      for (let at = 0; at < bytes.length;) at += await this.file.write(bytes.subarray(at));
    } else if (this.text) {
      this.textBytes += bytes.length;
      if (this.textBytes > this.opts.maxFieldBytes) {
        throw new ApiError(
          413,
          "payload_too_large",
          `Field '${this.fieldName}' is over ${this.opts.maxFieldBytes} bytes`,
        );
      }
      this.text.push(bytes.slice());
    }
  }

  private endPart(): void {
    this.closeFile();
    if (this.text) this.form.fields.set(this.fieldName, dec.decode(concat(...this.text)));
    this.text = null;
  }
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  parts.reduce((at, p) => (out.set(p, at), at + p.length), 0);
  return out;
}

/** First index of `needle` in `hay`; linear here because the delimiter's first byte (CR) recurs nowhere in it. */
function indexOf(hay: Uint8Array, needle: Uint8Array): number {
  for (
    let at = hay.indexOf(needle[0]);
    at >= 0 && at + needle.length <= hay.length;
    at = hay.indexOf(needle[0], at + 1)
  ) {
    let k = 1;
    while (k < needle.length && hay[at + k] === needle[k]) k++;
    if (k === needle.length) return at;
  }
  return -1;
}
