#!/usr/bin/env python3
"""train.py's epoch-loop time on a YOLO-layout dataset, for the time_to_adapt bench (issue 18).

Usage: python3 scripts/train_py_loop.py YOLOV5_DIR DATA_DIR OUT_DIR [--epochs 20] [--imgsz 320]
                                        [--batch 16] [--freeze 10] [--nc 3] [--threads CORES]

YOLOV5_DIR is an ultralytics YOLOv5 checkout (tag v7.0; e.g. `git archive v7.0` of it), never fetched by this
script. DATA_DIR holds images/ + labels/ (train) and val/images/ + val/labels/ (held out), as
`deno task bench --only time_to_adapt` writes its scenario. Runs train.py on CPU with the settings Kestrel's
fine-tune uses there: a yolov5n from yolov5n.yaml (its nc from the data), SGD with hyp.scratch-low's optimizer
and loss values and augmentation off (hsv, translate, scale, fliplr, mosaic 0: Kestrel's `augment: false`),
--freeze, --noautoanchor (Kestrel has no AutoAnchor), --cache ram (Kestrel keeps decoded images too), --noval
(train.py still validates after the last epoch, as Kestrel evaluates its result), --nosave, --noplots.

Prints one JSON line: `loop_seconds`, measured from train.py's "Starting training" log line (just before its
`t0 = time.time()`) to its "epochs completed" line (its own loop timing, printed there in hours with three
decimals), so train.py's start-up, dataset caching and final validation of best.pt are left out.
Nothing is downloaded: YOLOv5_AUTOINSTALL is off, and where the tensorboard or IPython packages are missing a
no-op stands in (train.py only logs scalars to tensorboard; IPython's display is for notebooks), as it does for
the plot font check_dataset would download.
"""
import argparse
import json
import logging
import os
import sys
import time
import types
from pathlib import Path

HYP = {
    'lr0': 0.01, 'lrf': 0.01, 'momentum': 0.937, 'weight_decay': 0.0005, 'warmup_epochs': 3.0,
    'warmup_momentum': 0.8, 'warmup_bias_lr': 0.1, 'box': 0.05, 'cls': 0.5, 'cls_pw': 1.0, 'obj': 1.0,
    'obj_pw': 1.0, 'iou_t': 0.2, 'anchor_t': 4.0, 'fl_gamma': 0.0,
    # augmentation off, as Kestrel's augment: false
    'hsv_h': 0.0, 'hsv_s': 0.0, 'hsv_v': 0.0, 'degrees': 0.0, 'translate': 0.0, 'scale': 0.0, 'shear': 0.0,
    'perspective': 0.0, 'flipud': 0.0, 'fliplr': 0.0, 'mosaic': 0.0, 'mixup': 0.0, 'copy_paste': 0.0,
}


def stub_if_missing(name, **attrs):
    try:
        __import__(name)
    except ImportError:
        stub = types.ModuleType(name)
        stub.__dict__.update(attrs)
        sys.modules[name] = stub
        parent = name.rsplit('.', 1)[0]
        if parent != name and parent not in sys.modules:
            sys.modules[parent] = types.ModuleType(parent)
        if parent == 'IPython':  # matplotlib asks a loaded IPython for its shell
            sys.modules[parent].get_ipython = lambda: None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('yolov5')
    ap.add_argument('data')
    ap.add_argument('out')
    ap.add_argument('--epochs', type=int, default=20)
    ap.add_argument('--imgsz', type=int, default=320)
    ap.add_argument('--batch', type=int, default=16)
    ap.add_argument('--freeze', type=int, default=10)
    ap.add_argument('--nc', type=int, default=3)
    ap.add_argument('--threads', type=int, default=os.cpu_count(), help='torch threads (default: every core)')
    args = ap.parse_args()
    yolov5, data, out = (Path(p).resolve() for p in (args.yolov5, args.data, args.out))
    if not (yolov5 / 'train.py').is_file():
        sys.exit(f'{yolov5} has no train.py: pass an ultralytics YOLOv5 v7.0 checkout')
    out.mkdir(parents=True, exist_ok=True)
    (out / 'data.yaml').write_text(
        f'path: {data}\ntrain: images\nval: val/images\nnc: {args.nc}\n'
        f'names: {json.dumps([f"class{i}" for i in range(args.nc)])}\n')
    (out / 'hyp.yaml').write_text(''.join(f'{k}: {v}\n' for k, v in HYP.items()))

    os.environ['YOLOv5_AUTOINSTALL'] = 'false'
    # Only used for logging and notebooks; stood in for where missing, so nothing has to be installed.
    stub_if_missing('torch.utils.tensorboard', SummaryWriter=lambda *a, **k: types.SimpleNamespace(
        add_scalar=lambda *a, **k: None, add_graph=lambda *a, **k: None, add_image=lambda *a, **k: None))
    stub_if_missing('IPython.display', display=lambda *a, **k: None)
    sys.path.insert(0, str(yolov5))
    sys.argv = [
        'train.py', '--data', str(out / 'data.yaml'), '--hyp', str(out / 'hyp.yaml'), '--cfg',
        str(yolov5 / 'models' / 'yolov5n.yaml'), '--weights', '', '--img', str(args.imgsz), '--batch-size',
        str(args.batch), '--epochs', str(args.epochs), '--freeze', str(args.freeze), '--device', 'cpu',
        '--noautoanchor', '--cache', 'ram', '--noval', '--nosave', '--noplots', '--project', str(out), '--name',
        'run', '--exist-ok'
    ]
    import train  # noqa: E402 (needs the path and environment above)
    import utils.general

    # check_dataset downloads a font for plots; nothing here plots, and nothing may be fetched.
    utils.general.check_font = lambda *a, **k: None

    marks = {}

    class LoopMarks(logging.Handler):
        def emit(self, record):
            message = record.getMessage()
            if 'Starting training for' in message:
                marks['start'] = time.time()
            elif 'epochs completed in' in message:
                marks['end'] = time.time()
                marks['reported'] = message.strip()

    train.LOGGER.addHandler(LoopMarks())
    # Debian's PyTorch starts with one OpenMP thread; Kestrel's lavapipe uses every core.
    __import__('torch').set_num_threads(args.threads)
    train.main(train.parse_opt())
    if 'start' not in marks or 'end' not in marks:
        sys.exit('train.py did not log the start and end of its epoch loop')
    print(json.dumps({
        'loop_seconds': round(marks['end'] - marks['start'], 2),
        'reported': marks['reported'],
        'torch': __import__('torch').__version__,
        'threads': __import__('torch').get_num_threads(),
    }))


if __name__ == '__main__':
    main()
