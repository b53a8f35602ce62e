"""nipad.metrics: the field's exact evaluation protocol (image/pixel AUROC, AP, F1-max and AUPRO per class)."""

from nipad.metrics.aupro import aupro
from nipad.metrics.curves import auroc, average_precision, f1_max
from nipad.metrics.protocol import (
    AUPRO_FPR_LIMIT,
    IMAGE_METRICS,
    METRIC_NAMES,
    PIXEL_METRICS,
    ClassInputs,
    Results,
    evaluate,
    evaluate_class,
    format_table,
    mean_over_classes,
)

__all__ = [
    "AUPRO_FPR_LIMIT",
    "IMAGE_METRICS",
    "METRIC_NAMES",
    "PIXEL_METRICS",
    "ClassInputs",
    "Results",
    "aupro",
    "auroc",
    "average_precision",
    "evaluate",
    "evaluate_class",
    "f1_max",
    "format_table",
    "mean_over_classes",
]
