"""What the service makes of an upload: the image upright as its EXIF orientation says, as training and predict
see it."""

import io
from pathlib import Path

import numpy as np
from PIL import Image

from nipad.engine.predict import model_input
from nipad.serve.inputs import model_inputs
from nipad.serve.settings import ServeSettings


def test_an_upload_is_turned_as_its_exif_orientation_says():
    stored = (np.arange(6 * 10 * 3) % 251).astype(np.uint8).reshape(6, 10, 3)  # 10 wide, 6 high as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # shown turned 90 degrees clockwise: 6 wide, 10 high
    buf = io.BytesIO()
    Image.fromarray(stored).save(buf, format="PNG", exif=exif)
    shown = np.rot90(stored, k=-1)
    settings = ServeSettings(run_dir=Path("run"))
    model, original = model_inputs(buf.getvalue(), "phone.png", settings, 8, keep_original=True)
    assert np.array_equal(original, shown)
    assert np.array_equal(model, model_input(shown, 8))
    alone, _ = model_inputs(buf.getvalue(), "phone.png", settings, 8, keep_original=False)
    assert np.array_equal(alone, model_input(shown, 8))
