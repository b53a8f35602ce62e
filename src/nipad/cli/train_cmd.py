"""`nipad train`: one model for every class of every --data root.

The flags every model takes are nipad.families.CommonOptions; the chosen --model's own flags are its options
dataclass (nipad.families), added once the words show which model (onenip when none is given). So a flag the model
does not take is refused by the parser, and `nipad train --model M --help` lists M's flags. Flags are not
abbreviated: `--mode` (a baseline's) is no `--model`.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nipad.cli.common import add_data_args, open_data
from nipad.families import CommonOptions, all_models, family_of_model
from nipad.families.flags import add_flags, read_flags
from nipad.models.names import SEED

if TYPE_CHECKING:
    import torch

DEFAULT_MODEL = "onenip"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train one model for all classes of the given data sets", allow_abbrev=False,
                       prepare=lambda parser, words: add_model_flags(parser, chosen_model(words)),
                       explain=lambda args: f"--model {args.model} takes no such flag; `nipad train --model "
                                            f"{args.model} --help` lists those it takes")
    add_data_args(p)
    p.add_argument("--model", choices=all_models(), default=DEFAULT_MODEL,
                   help="the model to train; `nipad train --model MODEL --help` lists its flags")
    p.add_argument("--out", required=True, metavar="RUN_DIR",
                   help="run directory (resumed if it holds an unfinished run)")
    add_flags(p, CommonOptions)
    p.add_argument("--overwrite", action="store_true", help="replace a finished run in RUN_DIR")
    p.set_defaults(run=run)


def chosen_model(words: list[str]) -> str:
    """The last `--model M` (or `--model=M`) among the words of `nipad train`, else the default."""
    model = DEFAULT_MODEL
    for i, word in enumerate(words):
        if word == "--":
            break
        if word == "--model" and i + 1 < len(words):
            model = words[i + 1]
        elif word.startswith("--model="):
            model = word.partition("=")[2]
    return model


def add_model_flags(parser: argparse.ArgumentParser, model: str) -> None:
    """Add `model`'s own flags to the train parser, once; an unknown model adds none (the parser refuses it)."""
    added = parser.get_default("model_flags")
    if added == model or model not in all_models():
        return
    if added is not None:
        raise ValueError(f"this train parser already has the flags of {added}; build another for {model}")
    options = family_of_model(model).options[model]
    add_flags(parser.add_argument_group(f"{model} (--model {model})"), options)
    parser.set_defaults(model_flags=model)


def training_config(args: argparse.Namespace, device: torch.device) -> Any:
    """The typed config that `family_of_model(args.model).train` takes, from the parsed flags; `device` is where it
    will train (a default may depend on it)."""
    family = family_of_model(args.model)
    options, common = read_flags(args, family.options[args.model]), read_flags(args, CommonOptions)
    return family.configure(args.model, options, common, device)


def run(args: argparse.Namespace) -> int:
    from nipad.data import kshot
    from nipad.data.train_data import TrainData
    from nipad.engine import distributed
    from nipad.utils.io import check_writable

    ctx = distributed.setup(args.device)
    try:
        dataset = open_data(args.data, args.classes)
        seed = SEED if args.seed is None else args.seed
        samples = (dataset.train if args.shots is None else
                   kshot(dataset.train, args.shots, seed) if args.shots else [])  # --shots 0: zero-shot models
        if ctx.is_main:
            print(dataset.describe())
        config = training_config(args, ctx.device)
        if ctx.is_main:
            check_writable(args.out)  # a read-only --out fails now, not at the first checkpoint
        data = TrainData(samples, list(dataset.classes), [str(root) for root in args.data])
        family_of_model(args.model).train(config, data, Path(args.out), ctx=ctx, overwrite=args.overwrite)
        if ctx.is_main:
            print(f"nipad: done; evaluate with `nipad test {args.out} --data {' --data '.join(args.data)}`")
        return 0
    finally:
        distributed.teardown(ctx)
