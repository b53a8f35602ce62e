"""report.html content: the metric table, one figure and the hardest examples per class, self-contained, escaped,
a class without masks, the cap on detailed classes, and `nipad test` writing it beside the results JSON."""

from __future__ import annotations

import base64
import io
import re
from html.parser import HTMLParser

import numpy as np
import pytest
from PIL import Image

from nipad.cli.main import main
from nipad.metrics import METRIC_NAMES
from nipad.report import render_report, write_report
from nipad.report.examples import example_image, hard_indices
from nipad.report.plots import thin


class _Tags(HTMLParser):
    """Every start tag with its attributes, and the page's visible text."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def _parse(page: str) -> _Tags:
    parser = _Tags()
    parser.feed(page)
    return parser


def _png(src: str) -> Image.Image:
    assert src.startswith("data:image/png;base64,")
    image = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))
    image.load()
    return image


@pytest.fixture(scope="module")
def page_text(synthetic) -> str:
    return render_report(*synthetic)


def test_table_figures_and_examples(synthetic, page_text):
    results, _ = synthetic
    page = _parse(page_text)
    rows = [a["data-class"] for t, a in page.tags if t == "tr" and "data-class" in a]
    assert rows == list(results.per_class)
    text = " ".join(page.text)
    assert all(m in text for m in METRIC_NAMES) and "mean" in text
    assert "evaluation resolution 64x64" in text
    assert f"{100 * results.mean['image_auroc']:.1f}" in text
    images = [_png(a["src"]) for t, a in page.tags if t == "img"]
    n_examples = sum(min(6, n["normal"]) + min(6, n["anomalous"]) for n in results.n_images.values())
    assert len(images) == len(results.per_class) + n_examples
    assert all(img.width > 100 and img.height > 50 for img in images)
    normal_scores = [float(s) for s in re.findall(r"#\d+ score ([\d.e+-]+)", text)][:3]
    assert normal_scores == sorted(normal_scores, reverse=True)


def test_self_contained_no_external_references(page_text):
    page = _parse(page_text)
    for tag, attrs in page.tags:
        for key in ("src", "href"):
            value = attrs.get(key)
            if value is not None:
                assert value.startswith(("data:image/png;base64,", "#")), (tag, key, value[:40])
    assert not re.search(r"https?://|url\(|@import|<script|<link", page_text, re.IGNORECASE)


def test_text_is_escaped(synthetic, page_text):
    odd_name = next(name for name in synthetic[0].per_class if name != "stripes")
    assert odd_name not in page_text and "<img src=x>" not in page_text and "runs/<demo>" not in page_text
    assert "&lt;b&gt;dots &amp; &quot;co&quot;&lt;/b&gt;" in page_text
    assert "/data/&lt;img src=x&gt;.png" in page_text and "runs/&lt;demo&gt;" in page_text
    text = " ".join(_parse(page_text).text)
    assert odd_name in text and "1 unreadable test image(s) skipped" in text


def test_class_without_masks_has_image_level_only(page_text):
    row = re.search(r'<tr data-class="&lt;b&gt;dots[^>]*>(.*?)</tr>', page_text).group(1)
    assert row.count("&ndash;") == 4
    sections = re.findall(r'<section class="cls".*?</section>', page_text)
    assert "image level only (no ground-truth masks)" in next(s for s in sections if "&lt;b&gt;dots" in s)
    assert "image and pixel level" in next(s for s in sections if "<h3>stripes</h3>" in s)


def _white_pixels(png: bytes) -> int:
    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    overlay = rgb[:, rgb.shape[1] // 2 + 2:]
    return int(np.count_nonzero(overlay.min(axis=2) >= 235))


def test_example_outline_only_where_a_mask_is(synthetic):
    _, outputs = synthetic
    i = outputs.labels["stripes"].index(1)
    path, anomaly_map, mask = outputs.paths["stripes"][i], outputs.maps["stripes"][i], outputs.masks["stripes"][i]
    with_mask = example_image(path, anomaly_map, mask, (0.0, 1.5), thumb=128)
    without = example_image(path, anomaly_map, np.zeros_like(mask), (0.0, 1.5), thumb=128)
    assert Image.open(io.BytesIO(with_mask)).size == (2 * 128 + 4, 128)
    assert _white_pixels(with_mask) > 50 and _white_pixels(without) == 0


def test_hard_examples_and_unreadable_image(synthetic, tmp_path):
    scores = np.array([0.1, 0.9, 0.5, 0.3, 0.7, 0.2])
    labels = np.array([0, 0, 0, 1, 1, 1])
    assert hard_indices(scores, labels, 2) == ([1, 2], [5, 3])
    results, outputs = synthetic
    paths = outputs.paths["stripes"]
    saved = list(paths)
    paths[:] = [str(tmp_path / "gone.png")] * len(paths)
    try:
        page_text = render_report(results, outputs)
    finally:
        paths[:] = saved
    assert "cannot read image file" in page_text and "gone.png" in page_text


def test_only_the_worst_classes_in_detail(synthetic, tmp_path):
    results, outputs = synthetic
    path = write_report(results, outputs, tmp_path / "r.html", max_classes=1, max_examples=2)
    page_text = path.read_text(encoding="utf-8")
    assert page_text.count('<section class="cls"') == 1
    assert re.search(r'id="not-detailed">1 more class', page_text)
    assert page_text.count("<figure>") == 4


def test_thin_keeps_ends_and_shape():
    x = np.linspace(0.0, 1.0, 100_000) ** 3
    y = np.sqrt(np.linspace(0.0, 1.0, 100_000))
    tx, ty = thin(x, y, 500)
    assert tx.size <= 502 and (tx[0], ty[0], tx[-1], ty[-1]) == (x[0], y[0], x[-1], y[-1])
    assert np.abs(np.interp(x, tx, ty) - y).max() < 0.01


def test_cli_test_writes_report_beside_json(tiny_uniad_run, tiny_mvtec, tmp_path, capsys):
    out = tmp_path / "results"
    assert main(["test", str(tiny_uniad_run), "--data", str(tiny_mvtec), "--json", str(out / "m.json")]) == 0
    report = out / "report.html"
    assert f"report written to {report}" in capsys.readouterr().out
    rows = re.findall(r'<tr data-class="([^"]+)"', report.read_text(encoding="utf-8"))
    assert rows == ["dots", "stripes"]


def test_threshold_table_shows_each_class_threshold_and_counts(synthetic):
    from dataclasses import replace
    from html import escape

    from nipad.engine.calibration import ALL, Calibration, fit_thresholds
    from nipad.engine.evaluate import operating_points

    results, outputs = synthetic
    assert 'id="no-threshold"' in render_report(results, outputs, max_examples=1)
    t = fit_thresholds(np.array([0.5, 1.0]), np.zeros((1, 2, 2)), 0.5)
    calibration = Calibration(0.5, {"stripes": t, ALL: t}, "x").with_manual(["stripes=0.75"])
    points = operating_points(outputs, calibration)
    page = render_report(replace(results, operating_point=points), outputs, max_examples=1)
    rows = re.findall(r'<tr data-threshold-class="([^"]+)">(.*?)</tr>', page)
    assert [name for name, _ in rows] == [escape(n) for n in points]  # names escaped, as everywhere
    cells = dict((name, re.findall(r"<td>(.*?)</td>", row)) for name, row in rows)
    p = points["stripes"]
    assert cells["stripes"][1:7] == ["0.75", "manual", *(str(p[k]) for k in ("defects_caught", "defects_missed",
                                                                             "false_alarms", "correct_passes"))]
    assert p["defects_caught"] + p["defects_missed"] + p["false_alarms"] + p["correct_passes"] == len(
        outputs.scores["stripes"])
    assert "(pooled)" in cells[next(n for n in cells if n != "stripes")][2]
