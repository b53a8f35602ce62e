"""`report.html`: one self-contained page (images inlined as base64 PNG, inline CSS, no script, nothing fetched)
with the metric table, each class's operating threshold and its counts, per-class curves and score histograms,
and the hardest normal and anomalous examples."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from html import escape
from pathlib import Path

import numpy as np

from nipad.engine.evaluate import Outputs
from nipad.metrics import METRIC_NAMES, Results
from nipad.report.examples import Example, examples, hard_indices, heat_range
from nipad.report.plots import class_figure
from nipad.utils.io import atomic_write_text

MAX_EXAMPLES = 6
MAX_DETAIL_CLASSES = 30
MAX_SKIPPED_LISTED = 50

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 24px auto; max-width: 1180px;
       padding: 0 16px; color: #1d1d1f; background: #ffffff; line-height: 1.4; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { border-bottom: 1px solid #d0d0d0; padding-bottom: 4px; margin-top: 1.8em; }
h3 { margin: 0 0 4px 0; font-size: 1.25em; }
h4 { margin: 14px 0 6px 0; font-size: 1em; color: #333333; }
.meta { color: #555555; margin: 2px 0; }
table.metrics { border-collapse: collapse; font-variant-numeric: tabular-nums; margin: 8px 0; }
table.metrics th, table.metrics td { padding: 4px 10px; border-bottom: 1px solid #e4e4e4; text-align: right; }
table.metrics th:first-child, table.metrics td:first-child { text-align: left; }
table.metrics thead th { background: #f2f2f4; font-weight: 600; }
table.metrics tbody tr:nth-child(even) { background: #fafafa; }
table.metrics tr.mean td { font-weight: 700; border-top: 2px solid #888888; }
section.cls { border: 1px solid #e0e0e0; border-radius: 6px; padding: 12px 16px; margin: 18px 0; }
img.curves { width: 100%; max-width: 880px; height: auto; display: block; }
.examples { display: flex; flex-wrap: wrap; gap: 10px; }
figure { margin: 0; font-size: 0.8em; color: #333333; max-width: 270px; }
figure img { display: block; image-rendering: auto; border: 1px solid #cccccc; }
figcaption { word-break: break-all; }
.note { color: #666666; font-size: 0.9em; }
.error { color: #b00020; }
nav a { margin-right: 10px; }
"""


def _percent(value: float | None) -> str:
    return "&ndash;" if value is None else f"{100.0 * value:.1f}"


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _resolution(hw: Sequence[int] | None) -> str:
    return "none" if hw is None else f"{hw[0]}x{hw[1]}"


def metric_table(results: Results) -> str:
    """Every class (name, image counts, the seven metrics in %) and the mean row."""
    head = "".join(f"<th>{escape(m)}</th>" for m in METRIC_NAMES)
    rows = []
    for name, values in results.per_class.items():
        counts = results.n_images.get(name, {})
        cells = "".join(f"<td>{_percent(values[m])}</td>" for m in METRIC_NAMES)
        rows.append(f'<tr data-class="{escape(name)}"><td>{escape(name)}</td><td>{counts.get("normal", 0)}</td>'
                    f'<td>{counts.get("anomalous", 0)}</td>{cells}</tr>')
    mean = "".join(f"<td>{_percent(results.mean[m])}</td>" for m in METRIC_NAMES)
    total = {k: sum(c.get(k, 0) for c in results.n_images.values()) for k in ("normal", "anomalous")}
    return (f'<table class="metrics" id="metrics"><thead><tr><th>class</th><th>normal</th><th>anomalous</th>{head}'
            f'</tr></thead><tbody>{"".join(rows)}</tbody><tfoot><tr class="mean"><td>mean</td>'
            f'<td>{total["normal"]}</td><td>{total["anomalous"]}</td>{mean}</tr></tfoot></table>')


def threshold_table(results: Results) -> str:
    """Per class: the image threshold `nipad test` applied, what set it, and at it the defects caught and missed,
    the false alarms and correct passes, precision and recall (Results.operating_point); a note when it has none."""
    points = results.operating_point
    if not points:
        return ('<p class="note" id="no-threshold">No operating threshold: the run has no calibration.json '
                '(`nipad calibrate`).</p>')
    head = ("<th>class</th><th>image threshold</th><th>set by</th><th>defects caught</th><th>defects missed</th>"
            "<th>false alarms</th><th>correct passes</th><th>precision %</th><th>recall %</th>")
    rows = []
    for name, p in points.items():
        method = escape(str(p["threshold_method"])) + (" (pooled)" if p["threshold_from"] == "pooled" else "")
        rows.append(f'<tr data-threshold-class="{escape(name)}"><td>{escape(name)}</td>'
                    f'<td>{p["image_threshold"]:.4g}</td><td>{method}</td><td>{p["defects_caught"]}</td>'
                    f'<td>{p["defects_missed"]}</td><td>{p["false_alarms"]}</td><td>{p["correct_passes"]}</td>'
                    f'<td>{_percent(p["precision"])}</td><td>{_percent(p["recall"])}</td></tr>')
    return ('<p class="note">A score above the image threshold is called a defect. Set by: rate = a false alarm '
            'rate on normal images, f1 = the F1 maximum on labelled test images, manual = --threshold; pooled = '
            'the class has no threshold of its own.</p>'
            f'<table class="metrics" id="thresholds"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}'
            f'</tbody></table>')


def detail_classes(results: Results, outputs: Outputs, limit: int) -> list[str]:
    """The classes shown in detail, in table order: all of them, or the `limit` with the lowest image AUROC
    (where a report helps most; classes with an undefined AUROC come last)."""
    names = [n for n in results.per_class if len(outputs.scores.get(n, ()))]
    if len(names) <= limit:
        return names
    auroc = {n: results.per_class[n]["image_auroc"] for n in names}
    chosen = set(sorted(names, key=lambda n: (auroc[n] is None, auroc[n] or 0.0))[:limit])
    return [n for n in names if n in chosen]


def _example_figures(items: list[Example], what: str) -> str:
    if not items:
        return f'<p class="note">No {what} test images in this class.</p>'
    figures = []
    for rank, ex in enumerate(items, 1):
        caption = (f"#{rank} score {ex.score:.4g}<br><span title=\"{escape(ex.path)}\">"
                   f"{escape('/'.join(Path(ex.path).parts[-2:]))}</span>")
        if ex.png is None:
            body = f'<p class="error">{escape(ex.error or "unreadable")}</p>'
        else:
            body = (f'<img src="{_data_uri(ex.png)}" alt="{escape(what)} image {rank}: photo and anomaly map of '
                    f'{escape(Path(ex.path).name)}">')
        figures.append(f"<figure>{body}<figcaption>{caption}</figcaption></figure>")
    return f'<div class="examples">{"".join(figures)}</div>'


def class_section(index: int, name: str, results: Results, outputs: Outputs, max_examples: int) -> str:
    """One class: its curves/histogram figure and its hardest normal and anomalous examples."""
    values = results.per_class[name]
    scores = np.asarray(outputs.scores[name], dtype=np.float64)
    labels = np.asarray(outputs.labels[name], dtype=np.int64)
    maps, masks = outputs.maps[name], outputs.masks[name]
    pixel = values["pixel_auroc"] is not None
    figure = class_figure(scores, labels, np.stack(maps) if pixel else None, np.stack(masks) if pixel else None,
                          values)
    worst_normal, hidden_anomalous = hard_indices(scores, labels, max_examples)
    heat = heat_range(maps)
    paths = outputs.paths[name]

    def shown(indices: list[int]) -> list[Example]:
        return examples(paths, scores, labels, maps, masks, indices, heat)

    levels = "image and pixel level" if pixel else "image level only (no ground-truth masks)"
    counts = results.n_images.get(name, {})
    return (f'<section class="cls" id="class-{index}"><h3>{escape(name)}</h3>'
            f'<p class="meta">{counts.get("normal", 0)} normal, {counts.get("anomalous", 0)} anomalous test images; '
            f'image AUROC {_percent(values["image_auroc"])}%; curves at {levels}.</p>'
            f'{_threshold_line(results.operating_point.get(name))}'
            f'<img class="curves" src="{_data_uri(figure)}" alt="ROC, precision-recall and score histogram of '
            f'{escape(name)}">'
            f'<h4>Normal images scored highest (closest to a false alarm)</h4>'
            f'{_example_figures(shown(worst_normal), "normal")}'
            f'<h4>Anomalous images scored lowest (best-hidden defects)</h4>'
            f'{_example_figures(shown(hidden_anomalous), "anomalous")}</section>')


def _threshold_line(point: dict | None) -> str:
    if not point:
        return ""
    return (f'<p class="meta threshold">At the image threshold {point["image_threshold"]:.4g} '
            f'({escape(str(point["threshold_method"]))}): {point["defects_caught"]} defects caught, '
            f'{point["defects_missed"]} missed, {point["false_alarms"]} false alarms, {point["correct_passes"]} '
            f'correct passes.</p>')


def _header(results: Results, outputs: Outputs, title: str) -> str:
    meta = results.meta
    pixel = ("pixel metrics: none (no ground-truth masks)" if results.eval_resolution is None else
             f"pixel metrics at the evaluation resolution {_resolution(results.eval_resolution)} (masks' size)")
    resolution = f"Model input {_resolution(results.image_size)}; {pixel}. Values in %, &ndash; = undefined."
    heatmaps = ("Heatmaps: the photo, then the anomaly map over it (colours span each class's 1st to 99.9th "
                "percentile of map values); white line = ground-truth outline.")
    lines = [f"Run: {escape(str(meta['run_dir']))}" if "run_dir" in meta else "",
             f"Data: {escape(str(meta['data']))}" if "data" in meta else "",
             resolution, heatmaps]
    skipped = ""
    if outputs.skipped:
        items = "".join(f"<li>{escape(p)}: {escape(r)}</li>" for p, r in outputs.skipped[:MAX_SKIPPED_LISTED])
        more = len(outputs.skipped) - MAX_SKIPPED_LISTED
        skipped = (f'<details><summary class="error">{len(outputs.skipped)} unreadable test image(s) skipped'
                   f'</summary><ul>{items}</ul>{f"<p>and {more} more</p>" if more > 0 else ""}</details>')
    body = "".join(f'<p class="meta">{line}</p>' for line in lines if line)
    if meta.get("unseen_classes"):
        body += (f'<p class="error" id="unseen">The run was not trained on {escape(", ".join(meta["unseen_classes"]))}'
                 f': its scores for them are not comparable to those of its own classes.</p>')
    return f"<h1>{escape(title)}</h1>{body}{skipped}"


def render_report(results: Results, outputs: Outputs, title: str = "nipad test report",
                  max_examples: int = MAX_EXAMPLES, max_classes: int = MAX_DETAIL_CLASSES) -> str:
    """The whole page as a string (see the module docstring)."""
    detailed = detail_classes(results, outputs, max_classes)
    index = {name: i for i, name in enumerate(results.per_class)}
    sections = "".join(class_section(index[n], n, results, outputs, max_examples) for n in detailed)
    nav = " ".join(f'<a href="#class-{index[n]}">{escape(n)}</a>' for n in detailed)
    rest = [n for n in results.per_class if n not in set(detailed)]
    summary = ""
    if rest:
        summary = (f'<p class="note" id="not-detailed">{len(rest)} more class(es) are in the table only (the '
                   f'{len(detailed)} with the lowest image AUROC are shown in detail): '
                   f'{escape(", ".join(rest))}.</p>')
    return ("<!DOCTYPE html>\n"
            f'<html lang="en"><head><meta charset="utf-8"><meta name="viewport" '
            f'content="width=device-width, initial-scale=1"><title>{escape(title)}</title><style>{CSS}</style>'
            f"</head><body>{_header(results, outputs, title)}<h2>Metrics per class</h2>{metric_table(results)}"
            f"<h2>Operating threshold per class</h2>{threshold_table(results)}"
            f"<h2>Classes</h2><nav>{nav}</nav>{summary}{sections}</body></html>\n")


def write_report(results: Results, outputs: Outputs, path: str | Path, title: str = "nipad test report",
                 max_examples: int = MAX_EXAMPLES, max_classes: int = MAX_DETAIL_CLASSES) -> Path:
    """Render the page and write it atomically to `path`; returns the path."""
    path = Path(path)
    atomic_write_text(path, render_report(results, outputs, title, max_examples, max_classes))
    return path
