"""report.html in headless Chromium: the page the browser builds has the table rows, every image decodes, and the
screenshot shows a page, not a blank canvas. Chromium comes from the Debian packages that scripts/test.sh installs."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nipad.report import write_report

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars"]
# After load, mark each image the browser could not decode and count them all on <body>; the broken control
# image proves the marking works.
PROBE = ("<img id=\"control\" src=\"data:image/png;base64,AAAA\"><script>window.addEventListener('load', () => {"
         "for (const img of document.images) { if (!img.complete || img.naturalWidth === 0) "
         "img.setAttribute('data-broken', '1'); } document.body.setAttribute('data-images', "
         "String(document.images.length)); });</script>")


def _chromium(tmp_path: Path, *args: str) -> str:
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        pytest.fail("Chromium is not installed: run `bash scripts/test.sh`, which installs the Debian packages "
                    "chromium and chromium-driver.")
    done = subprocess.run([binary, *FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}", *args],
                          check=False, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.fixture(scope="module")
def report(synthetic, tmp_path_factory) -> Path:
    return write_report(*synthetic, tmp_path_factory.mktemp("report") / "report.html")


def test_dom_has_rows_and_every_image_decodes(synthetic, report, tmp_path):
    page = report.read_text(encoding="utf-8")
    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    dom = _chromium(tmp_path, "--virtual-time-budget=10000", "--dump-dom", probe.as_uri())
    rows = re.findall(r'<tr data-class="([^"]*)"', dom)
    assert len(rows) == len(synthetic[0].per_class) and "stripes" in rows
    assert re.search(r'<tr class="mean"><td>mean</td>', dom)
    n_images = page.count("<img ")
    assert n_images > len(rows)
    assert re.search(r'<body[^>]*data-images="(\d+)"', dom).group(1) == str(n_images + 1)
    broken = re.findall(r'<img ([^>]*)data-broken="1"', dom)
    assert len(broken) == 1 and 'id="control"' in broken[0]


def test_screenshot_is_a_readable_page(report, tmp_path):
    shot = tmp_path / "shot.png"
    _chromium(tmp_path, "--window-size=1280,1600", f"--screenshot={shot}", report.as_uri())
    rgb = np.asarray(Image.open(shot).convert("RGB")).astype(np.int16)
    assert rgb.shape == (1600, 1280, 3)
    not_white = rgb.min(axis=2) < 230
    coloured = (rgb.max(axis=2) - rgb.min(axis=2)) > 80
    assert not_white.mean() > 0.03, "screenshot is blank"
    assert coloured.sum() > 5000, "no curves or heatmaps visible"
    assert not_white[:200].mean() > 0.005, "no title or table text at the top"
