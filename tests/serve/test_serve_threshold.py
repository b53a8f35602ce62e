"""`nipad serve --threshold`: image thresholds set by hand decide the service's labels, also in /classes, and a bad
value stops the service before its port opens."""

import numpy as np
import pytest

from nipad.cli.main import main
from nipad.engine.predict import load_original, model_input
from nipad.errors import ConfigError
from nipad.serve.responses import image_result
from nipad.serve.service import InspectionService
from nipad.serve.settings import ServeSettings


@pytest.fixture(scope="module")
def images(tiny_mvtec):
    return [model_input(load_original(p), 64) for p in sorted((tiny_mvtec / "dots/test").glob("*/*.png"))]


def _results(run, images, *thresholds):
    service = InspectionService(ServeSettings(run_dir=run, threads=1, thresholds=thresholds))
    try:
        return [image_result(str(i), s, None, None, False, False) for i, s in enumerate(service.score(images))], \
            {c["name"]: c for c in service.classes()}
    finally:
        service.close()


def test_threshold_by_hand_decides_the_labels(untrained_onenip_run, images):
    plain, classes = _results(untrained_onenip_run, images)
    assert {c["image_threshold_method"] for c in classes.values()} == {"rate"}
    scores = np.array([r["pred_score"] for r in plain])
    high, low = str(scores.max() + 1), str(scores.min() - 1)
    results, classes = _results(untrained_onenip_run, images, high)
    assert not any(r["pred_label"] for r in results)
    assert {c["image_threshold"] for c in classes.values()} == {float(high)}
    assert {c["image_threshold_method"] for c in classes.values()} == {"manual"}
    assert all(r["pred_label"] for r in _results(untrained_onenip_run, images, low)[0])
    one = plain[0]["class"]
    results, _ = _results(untrained_onenip_run, images, high, f"{one}={low}")
    assert [r["pred_label"] for r in results] == [r["class"] == one for r in plain]
    assert [r["pred_score_normalized"] for r in results] != [r["pred_score_normalized"] for r in plain]


def test_a_bad_threshold_stops_the_service_before_it_listens(untrained_onenip_run, capsys):
    with pytest.raises(ConfigError, match=r"no class 'bottle' \(its classes: dots, stripes\)"):
        InspectionService(ServeSettings(run_dir=untrained_onenip_run, threads=1, thresholds=("bottle=1",)))
    assert main(["serve", str(untrained_onenip_run), "--port", "0", "--threads", "1", "--threshold", "inf"]) == 2
    assert "'inf' is not a finite number" in capsys.readouterr().err
