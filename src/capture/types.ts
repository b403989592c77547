/** What a capture is: the frame as received, what the model said about it, and what a person said. */

export type CaptureStatus = "new" | "labelled" | "rejected";
export type CaptureSplit = "train" | "val";
export type ImageFormat = "jpeg" | "png" | "webp";

/** Original-image pixels. */
export interface PixelBox {
  x1: number;
  y1: number;
  x2: number;
  y2: number;
}

export interface CapturePrediction {
  class_id: number;
  class_name: string;
  confidence: number;
  box: PixelBox;
}

export interface CaptureLabel {
  class_id: number;
  box: PixelBox;
}

/** Where the frame came from: the API family, the client's address, the `x-camera-id` header. */
export interface CaptureSource {
  route: "native" | "deepstack" | "v2";
  client: string | null;
  camera: string | null;
}

/** A frame offered for capture by a detect route. */
export interface NewCapture {
  model: string;
  version: number;
  image: Uint8Array;
  format: ImageFormat;
  width: number;
  height: number;
  predictions: CapturePrediction[];
  source: CaptureSource;
  time: Date;
}

/** A stored capture (its `meta.json`); the image bytes lie beside it. */
export interface CaptureMeta {
  id: string;
  model: string;
  version: number;
  time: string;
  bytes: number;
  format: ImageFormat;
  width: number;
  height: number;
  source: CaptureSource;
  predictions: CapturePrediction[];
  status: CaptureStatus;
  /** Set once labelled: the boxes a person confirmed (empty: a frame with no objects). */
  labels: CaptureLabel[] | null;
  split: CaptureSplit | null;
  /** Set when rejected with a reason. */
  reject_reason?: string;
}
