"""`nipad data ROOT...`: show what the readers find (counts per class), to check a data set before training."""

from __future__ import annotations

import argparse

from nipad.cli.common import add_data_args, open_data


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="list the classes and image counts the readers find")
    add_data_args(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    print(open_data(args.data, args.classes).describe())
    return 0
