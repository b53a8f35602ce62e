"""`nipad prompt add RUN_DIR --class NAME IMAGES...`: serve a product type the model never saw, without retraining."""

from __future__ import annotations

import argparse

from nipad.data.image_io import MAX_PIXELS


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("prompt", help="manage the prompt pool of a trained run")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = actions.add_parser("add", help="add normal images of a (new) class and calibrate its thresholds")
    add.add_argument("run_dir", metavar="RUN_DIR")
    add.add_argument("--class", dest="class_name", required=True, metavar="NAME")
    add.add_argument("images", nargs="+", metavar="IMAGE", help="normal images, folders or globs")
    add.add_argument("--prompts", type=int, default=1, help="how many of them become prompts (the most typical)")
    add.add_argument("--false-alarm-rate", type=float, help="default: the run's")
    add.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:1 ...")
    add.add_argument("--max-pixels", type=int, default=MAX_PIXELS,
                     help=f"refuse images declaring more pixels than this (default {MAX_PIXELS})")
    add.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from nipad.engine.distributed import pick_device
    from nipad.engine.image_inputs import find_images
    from nipad.engine.prompts import add_prompts, check_class_name
    from nipad.engine.train_config import check_rate

    check_class_name(args.class_name)
    check_rate(args.false_alarm_rate)
    device = str(pick_device(args.device))
    paths = [item.path for item in find_images(args.images)]
    done = add_prompts(args.run_dir, args.class_name, paths, args.prompts,
                       args.false_alarm_rate, device, args.max_pixels)
    print(f"nipad: class {done['class']!r}: {done['prompts']} prompt(s) added; thresholds from {done['source']} "
          f"(image threshold {done['image_threshold']:.4g})")
    return 0
