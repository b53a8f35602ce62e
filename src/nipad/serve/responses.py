"""Per-image JSON of POST /predict: score, label, normalised score, classes used, and on request the normalised
anomaly map (grey PNG) or the overlay (map over the image, predicted defect outlined), base64, at the image's size."""

from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from nipad.runs.file_names import ALL
from nipad.serve.service import Scored
from nipad.visualize import draw_outline, overlay_heatmap


def png_base64(array: np.ndarray) -> str:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def image_result(name: str, scored: Scored, class_name: str | None, original: np.ndarray | None,
                 want_map: bool, want_overlay: bool, alpha: float = 0.4) -> dict[str, Any]:
    """`class_name` (the client's) overrides the prompt's class for the thresholds; `original` is needed for maps."""
    cls = class_name or scored.prompt_class
    calibration = scored.calibration
    own = cls is not None and cls != ALL and cls in calibration.classes
    applied = calibration.apply(np.array([scored.pred_score]), scored.anomaly_map[None], [cls])
    result: dict[str, Any] = {
        "file": name, "pred_score": scored.pred_score, "pred_label": bool(applied["pred_label"][0]),
        "pred_score_normalized": float(applied["pred_score_normalized"][0]),
        "class": scored.prompt_class,
        # the class whose thresholds judged the image; null and "pooled" where it has none of its own
        "threshold_class": cls if own else None, "threshold_from": "class" if own else "pooled",
    }
    if (want_map or want_overlay) and original is not None:
        full = F.interpolate(torch.from_numpy(scored.anomaly_map)[None, None], size=original.shape[:2],
                             mode="bilinear", align_corners=False)[0, 0].numpy()
        at_size = calibration.apply(np.array([scored.pred_score]), full[None], [cls])
        normalized, mask = at_size["anomaly_map_normalized"][0], at_size["pred_mask"][0]
        result["defect_area_fraction"] = float(mask.mean())
        if want_map:
            result["anomaly_map_png"] = png_base64(np.round(np.clip(normalized, 0, 1) * 255).astype(np.uint8))
        if want_overlay:
            result["overlay_png"] = png_base64(draw_outline(overlay_heatmap(original, normalized, alpha), mask))
    return result
