#!/usr/bin/env python3
"""PyTorch's YOLOv5n training step with ultralytics v7.0 train.py's semantics, timed as images/s.

Run by scripts/gpu_bench.sh from the package it unpacked; prints one JSON line per case, as it goes. What one step
is, as train.py does it (the work Kestrel's finetune_step times): the uint8 batch to the device and /255, forward
and ComputeLoss under autocast(amp) (train.py: torch.cuda.amp), GradScaler.scale(loss).backward(), unscale_, clip_grad_norm_
(10), scaler.step (smart_optimizer's SGD-nesterov in three groups), scaler.update, zero_grad, and the loss items read
back (train.py's progress line does that every step). The optimizer steps every iteration (accumulate 1) as in
Kestrel's bench; the EMA update is left out on both sides. The model is built as train.py builds it from a
checkpoint (Model(ckpt['model'].yaml) with the checkpoint's float weights), from models/yolov5n.yaml when the .pt
cannot be loaded. On a machine without CUDA it runs on the CPU, in float32 only.
"""

import argparse
import importlib
import json
import sys
import time
import types
import warnings
from pathlib import Path

# Imported at module level by YOLOv5 v7.0's models/ and utils/ but never called by a training step (notebook
# display, plots, detection NMS): an empty stand-in lets the step run where they are not installed.
UNUSED_BY_THE_STEP = ["IPython", "IPython.display", "seaborn", "torchvision"]


class _StandIn(types.ModuleType):
    """A module whose every attribute is a no-op callable: enough for import-time references."""

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return lambda *args, **kwargs: None


def install_stand_ins():
    stood_in = []
    for name in UNUSED_BY_THE_STEP:
        try:
            importlib.import_module(name)
        except ImportError:
            sys.modules[name] = _StandIn(name)
            stood_in.append(name)
    return stood_in


def parse_cases(text):
    """'320x8:f32,640x64:amp' -> [(320, 8, False), (640, 64, True)]."""
    cases = []
    for item in text.split(","):
        size_batch, precision = item.split(":")
        size, batch = size_batch.split("x")
        if precision not in ("f32", "amp"):
            raise ValueError(f"case {item}: precision must be f32 or amp")
        cases.append((int(size), int(batch), precision == "amp"))
    return cases


def load_batch(golden, imgsz, batch, torch, cv2, np):
    """The golden fine-tune's images (resized to imgsz) and labels, repeated to fill the batch, as train.py's
    dataloader hands them over: uint8 NCHW RGB and rows [image, class, x, y, w, h] (normalised)."""
    stems = ["bus", "chelsea", "coffee", "zidane"]
    images, rows = [], []
    for b in range(batch):
        stem = stems[b % len(stems)]
        img = cv2.imread(str(golden / "images" / f"{stem}.png"))
        img = cv2.resize(img, (imgsz, imgsz), interpolation=cv2.INTER_LINEAR)
        images.append(np.ascontiguousarray(img[:, :, ::-1].transpose(2, 0, 1)))
        for line in (golden / "labels" / f"{stem}.txt").read_text().split("\n"):
            if line.strip():
                rows.append([b, *map(float, line.split())])
    return torch.from_numpy(np.stack(images)), torch.tensor(rows)


def build_model(args, device, torch):
    from models.yolo import Model
    from utils.general import intersect_dicts

    try:
        ckpt = torch.load(args.weights, map_location="cpu", weights_only=False)
        model = Model(ckpt["model"].yaml, ch=3, nc=80).to(device)
        csd = intersect_dicts(ckpt["model"].float().state_dict(), model.state_dict())
        model.load_state_dict(csd, strict=False)
        return model, f"{Path(args.weights).name} ({len(csd)}/{len(model.state_dict())} tensors)"
    except Exception as err:  # noqa: BLE001 - any load failure falls back to the yaml, and says why
        yaml_path = Path(args.yolov5) / "models" / "yolov5n.yaml"
        return Model(str(yaml_path), ch=3, nc=80).to(device), f"yolov5n.yaml ({type(err).__name__} loading .pt)"


def time_case(args, device, hyp0, imgsz, batch, amp, torch, cv2, np):
    from utils.loss import ComputeLoss
    from utils.torch_utils import smart_optimizer

    model, model_from = build_model(args, device, torch)
    # train.py: hyp scaled to layers, classes and image size; weight decay to batch size (accumulate 1 here).
    hyp = dict(hyp0)
    nl = model.model[-1].nl
    hyp["box"] *= 3 / nl
    hyp["cls"] *= 80 / 80 * 3 / nl
    hyp["obj"] *= (imgsz / 640) ** 2 * 3 / nl
    hyp["label_smoothing"] = 0.0
    model.nc, model.hyp = 80, hyp
    model.train()
    optimizer = smart_optimizer(model, "SGD", hyp["lr0"], hyp["momentum"], hyp["weight_decay"] * batch / 64)
    compute_loss = ComputeLoss(model)
    # train.py's torch.cuda.amp spelling, through torch.amp where the torch at hand has it (2.3+ deprecates the old).
    scaler = (torch.amp.GradScaler("cuda", enabled=amp) if hasattr(torch.amp, "GradScaler")
              else torch.cuda.amp.GradScaler(enabled=amp))
    imgs_u8, targets = load_batch(Path(args.golden), imgsz, batch, torch, cv2, np)

    def step():
        imgs = imgs_u8.to(device, non_blocking=True).float() / 255
        with torch.autocast("cuda", enabled=amp):
            pred = model(imgs)
            loss, loss_items = compute_loss(pred, targets.to(device))
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=10.0)
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad()
        return loss_items.cpu()

    first = step()
    for _ in range(args.warmup - 1):
        step()
    steps, t0 = 0, time.perf_counter()
    while steps < args.steps and (steps == 0 or time.perf_counter() - t0 < args.seconds):
        step()
        steps += 1
    seconds = time.perf_counter() - t0
    return {
        "model": model_from,
        "timed_steps": steps,
        "images_per_s": round(batch * steps / seconds, 2),
        "first_loss": round(float(first.sum()) * batch, 4),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--yolov5", required=True, help="folder holding YOLOv5 v7.0's models/ and utils/")
    parser.add_argument("--weights", required=True, help="yolov5n.pt")
    parser.add_argument("--golden", required=True, help="the reference data's golden/finetune-sgd/")
    parser.add_argument("--cases", required=True, help="e.g. 320x8:f32,320x8:amp")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=10.0, help="timed steps stop after this, once one ran")
    parser.add_argument("--budget", type=float, default=float("inf"), help="no case starts after this many seconds")
    args = parser.parse_args()
    started = time.perf_counter()

    stood_in = install_stand_ins()
    import cv2
    import numpy as np
    import torch

    warnings.filterwarnings("ignore")  # deprecation notes of YOLOv5 v7.0's torch calls, autocast without CUDA
    sys.path.insert(0, str(Path(args.yolov5).resolve()))
    cuda = torch.cuda.is_available()
    device = torch.device("cuda:0" if cuda else "cpu")
    device_name = torch.cuda.get_device_name(0) if cuda else "cpu"
    hyp0 = json.loads((Path(args.golden) / "scenario.json").read_text())["hyp"]
    base = {"torch": torch.__version__, "device": device_name, "stand_ins": stood_in}
    for imgsz, batch, amp in parse_cases(args.cases):
        line = {"case": f"{imgsz}x{batch}:{'amp' if amp else 'f32'}", **base}
        if amp and not cuda:
            line["skipped"] = "amp: CUDA only (torch.cuda.amp, as train.py)"
        elif time.perf_counter() - started > args.budget:
            line["skipped"] = "skipped: time budget"
        else:
            try:
                line.update(time_case(args, device, hyp0, imgsz, batch, amp, torch, cv2, np))
            except Exception as err:  # noqa: BLE001 - one case failing (out of memory) must not end the others
                line["error"] = f"{type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else ''}"
            if cuda:
                torch.cuda.empty_cache()
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
