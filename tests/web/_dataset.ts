// A small YOLO-layout zip for the fine-tune part of the dashboard test: the shared photos labelled with the
// reference detections (ultralytics detect.py on yolov5n), bus.jpg held out as the val split.
import { zipSync } from "fflate";

const SHARED = new URL("../../../shared/", import.meta.url);

interface Reference {
  images: Record<string, {
    width: number;
    height: number;
    detections: { class_id: number; box: [number, number, number, number] }[];
  }>;
}

function labels(image: Reference["images"][string]): Uint8Array {
  const lines = image.detections.map(({ class_id, box: [x1, y1, x2, y2] }) =>
    [
      class_id,
      (x1 + x2) / 2 / image.width,
      (y1 + y2) / 2 / image.height,
      (x2 - x1) / image.width,
      (y2 - y1) / image.height,
    ].map((v, i) => (i === 0 ? String(v) : v.toFixed(6))).join(" ")
  );
  return new TextEncoder().encode(lines.join("\n") + "\n");
}

/** Writes the zip to `path`: train = bus.jpg and zidane.jpg, val = bus.jpg. */
export async function writeDatasetZip(path: string): Promise<void> {
  const ref: Reference = JSON.parse(
    await Deno.readTextFile(new URL("reference/detect_yolov5n_640.json", SHARED)),
  );
  const files: Record<string, Uint8Array> = {};
  for (const name of ["bus.jpg", "zidane.jpg"]) {
    const stem = name.replace(/\.jpg$/, "");
    files[`images/${name}`] = await Deno.readFile(new URL(`images/${name}`, SHARED));
    files[`labels/${stem}.txt`] = labels(ref.images[name]);
  }
  files["val/images/bus.jpg"] = files["images/bus.jpg"];
  files["val/labels/bus.txt"] = files["labels/bus.txt"];
  await Deno.writeFile(path, zipSync(files, { level: 0 }));
}

/** Writes a zip the server must refuse: a class id past nc, a box outside the image, a non-image. */
export async function writeBadDatasetZip(path: string): Promise<void> {
  const enc = new TextEncoder();
  await Deno.writeFile(
    path,
    zipSync({
      "images/bus.jpg": await Deno.readFile(new URL("images/bus.jpg", SHARED)),
      "labels/bus.txt": enc.encode("999 0.5 0.5 0.2 0.2\n0 1.5 0.5 0.2 0.2\n"),
      "images/broken.jpg": enc.encode("not a jpeg"),
      "labels/broken.txt": enc.encode("0 0.5 0.5 0.2 0.2\n"),
    }, { level: 0 }),
  );
}
