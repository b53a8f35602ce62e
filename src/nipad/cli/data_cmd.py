"""`nipad data --data ROOT...`: show exactly what will train and test, to check a data set before training.

Per class: training images, normal and anomalous test images and masks; the anomalous ones per defect type; and
notes, e.g. how many normal images a folder without a test split holds out for testing (`nipad.data.plain_folder`).
"""

from __future__ import annotations

import argparse

from nipad.cli.common import add_data_args, open_data


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="show what will train and test per class: image counts, defect types, masks "
                                   "and held-out normals")
    add_data_args(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    print(open_data(args.data, args.classes).describe())
    return 0
