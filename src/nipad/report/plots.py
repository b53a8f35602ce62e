"""The report's figures: one PNG per class with ROC and PR curves (image level, and pixel level where masks exist)
and the score histograms of normal vs anomalous images. Matplotlib's object API on the Agg canvas (no pyplot, so no
global figure state and no display needed); curves from scikit-learn's roc_curve / precision_recall_curve."""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn.metrics import precision_recall_curve, roc_curve

CURVE_POINTS = 600
PIXEL_SAMPLE = 2**21
NORMAL_COLOR = "#2b7bba"
ANOMALOUS_COLOR = "#d7301f"
PIXEL_COLOR = "#7b3294"


@dataclass(frozen=True)
class Curve:
    """One ROC or PR curve, thinned for drawing, with the protocol's area under it for the legend."""

    x: np.ndarray
    y: np.ndarray
    area: float | None


def thin(x: np.ndarray, y: np.ndarray, n: int = CURVE_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """At most `n` + 1 vertices evenly spaced along the polyline (x, y), both ends kept: pixel curves have millions
    of thresholds, and a figure a few hundred pixels wide shows no difference."""
    if x.size <= n + 1:
        return x, y
    arc = np.concatenate([[0.0], np.cumsum(np.abs(np.diff(x)) + np.abs(np.diff(y)))])
    keep = np.unique(np.concatenate([np.searchsorted(arc, np.linspace(0.0, arc[-1], n)), [0, x.size - 1]]))
    keep = keep[keep < x.size]
    return x[keep], y[keep]


def roc(scores: np.ndarray, labels: np.ndarray, area: float | None) -> Curve | None:
    """FPR/TPR curve; None when the labels hold only one class (the curve is undefined)."""
    if labels.min() == labels.max():
        return None
    fpr, tpr, _ = roc_curve(labels, scores)
    return Curve(*thin(fpr, tpr), area)


def pr(scores: np.ndarray, labels: np.ndarray, area: float | None) -> Curve | None:
    """Recall/precision curve; None when the labels hold only one class."""
    if labels.min() == labels.max():
        return None
    precision, recall, _ = precision_recall_curve(labels, scores)
    return Curve(*thin(recall, precision), area)


def pixel_sample(maps: np.ndarray, masks: np.ndarray, limit: int = PIXEL_SAMPLE) -> tuple[np.ndarray, np.ndarray]:
    """All pixels as flat (values, labels), or `limit` of them drawn at random (fixed seed) when there are more: a
    class of a few hundred 224x224 images has tens of millions, which scikit-learn would take a minute and gigabytes
    to sort, while two million draw the same curve to within a line's width. The legends keep the exact areas."""
    flat_maps, flat_masks = np.asarray(maps).reshape(-1), np.asarray(masks, dtype=bool).reshape(-1)
    if flat_maps.size > limit:
        chosen = np.random.default_rng(0).integers(0, flat_maps.size, limit)
        flat_maps, flat_masks = flat_maps[chosen], flat_masks[chosen]
    return flat_maps.astype(np.float32), flat_masks


def _legend(kind: str, metric: str, curve: Curve) -> str:
    return kind if curve.area is None else f"{kind} ({metric} {100.0 * curve.area:.1f}%)"


def _roc_axes(ax: Axes, curves: dict[str, Curve | None]) -> None:
    ax.plot([0, 1], [0, 1], color="#bbbbbb", linestyle=":", linewidth=1)
    for (kind, curve), color in zip(curves.items(), (ANOMALOUS_COLOR, PIXEL_COLOR)):
        if curve is not None:
            ax.plot(curve.x, curve.y, color=color, linewidth=1.6, label=_legend(kind, "AUROC", curve))
    ax.set(title="ROC", xlabel="false positive rate", ylabel="true positive rate", xlim=(0, 1), ylim=(0, 1.02))


def _pr_axes(ax: Axes, curves: dict[str, Curve | None]) -> None:
    for (kind, curve), color in zip(curves.items(), (ANOMALOUS_COLOR, PIXEL_COLOR)):
        if curve is not None:
            ax.plot(curve.x, curve.y, color=color, linewidth=1.6, label=_legend(kind, "AP", curve))
    ax.set(title="precision-recall", xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02))


def _histogram_axes(ax: Axes, scores: np.ndarray, labels: np.ndarray) -> None:
    edges = np.histogram_bin_edges(scores, bins=min(40, max(5, scores.size // 3)))
    for value, name, color in ((0, "normal", NORMAL_COLOR), (1, "anomalous", ANOMALOUS_COLOR)):
        chosen = scores[labels == value]
        if chosen.size:
            ax.hist(chosen, bins=edges.tolist(), color=color, alpha=0.55, label=f"{name} ({chosen.size})")
    ax.set(title="image scores", xlabel="anomaly score", ylabel="images")


def class_figure(scores: np.ndarray, labels: np.ndarray, maps: np.ndarray | None, masks: np.ndarray | None,
                 areas: dict[str, float | None]) -> bytes:
    """PNG of one class: ROC, PR and score histogram side by side. `maps`/`masks` (N, H, W) add the pixel-level
    curves (from a sample of the pixels when there are many, see pixel_sample); `areas` holds the protocol's
    image/pixel AUROC and AP for the legends (keys as in the metric names)."""
    labels = np.asarray(labels).astype(bool)
    scores = np.asarray(scores, dtype=np.float64)
    rocs = {"image": roc(scores, labels, areas.get("image_auroc"))}
    prs = {"image": pr(scores, labels, areas.get("image_ap"))}
    if maps is not None and masks is not None:
        flat_maps, flat_masks = pixel_sample(maps, masks)
        rocs["pixel"] = roc(flat_maps, flat_masks, areas.get("pixel_auroc"))
        prs["pixel"] = pr(flat_maps, flat_masks, areas.get("pixel_ap"))
    fig = Figure(figsize=(11.0, 3.1), dpi=80)
    FigureCanvasAgg(fig)
    roc_ax, pr_ax, hist_ax = fig.subplots(1, 3, gridspec_kw={"left": 0.055, "right": 0.985, "bottom": 0.16,
                                                               "top": 0.91, "wspace": 0.25})
    _roc_axes(roc_ax, rocs)
    _pr_axes(pr_ax, prs)
    _histogram_axes(hist_ax, scores, labels)
    for ax in (roc_ax, pr_ax, hist_ax):
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8, loc="lower right" if ax is not hist_ax else "best", frameon=False)
        else:
            ax.text(0.5, 0.5, "undefined: needs normal\nand anomalous images", ha="center", va="center",
                    transform=ax.transAxes, color="#777777")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()
