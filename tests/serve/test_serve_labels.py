"""The service's JSON names the class whose thresholds judged an image, never the pooled entry's internal key."""

import numpy as np

from nipad.engine.calibration import ALL, Calibration, fit_thresholds
from nipad.serve.responses import image_result
from nipad.serve.service import Scored


def test_threshold_class_is_the_class_or_null_with_pooled_thresholds():
    t = fit_thresholds(np.arange(10.0), np.ones((2, 4, 4)), 0.1)
    calibration = Calibration(0.1, {"dots": t, ALL: t}, "x")
    own = image_result("a.png", Scored(3.0, np.ones((4, 4), np.float32), "dots", calibration), None, None, False,
                       False)
    assert own["threshold_class"] == "dots" and own["threshold_from"] == "class"
    for prompt, asked in (("new", None), (None, None), ("dots", "other")):
        result = image_result("b.png", Scored(3.0, np.ones((4, 4), np.float32), prompt, calibration), asked, None,
                              False, False)
        assert result["threshold_class"] is None and result["threshold_from"] == "pooled"
        assert ALL not in str(result)
