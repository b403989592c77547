/**
 * Why an image was refused. The API maps each kind to its HTTP status (415, 422, 413), so callers catch this
 * class rather than matching message text.
 */
export type ImageErrorKind = "unsupported_media_type" | "undecodable_image" | "image_too_large";

export class ImageError extends Error {
  constructor(readonly kind: ImageErrorKind, message: string) {
    super(message);
    this.name = "ImageError";
  }
}
