"""nipad: unified visual anomaly detection (OneNIP, UniAD and baselines), one model for every product type.

`nipad.train(data=..., model=..., out=...)` trains a run, `nipad.load(run).predict(images)` scores images (see
nipad.api). They are imported on first use, so that `import nipad` stays light (no torch).
"""

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Detector", "Result", "__version__", "load", "train"]

_API = ("Detector", "Result", "load", "train")

if TYPE_CHECKING:
    from nipad.api import Detector, Result, load, train


def __getattr__(name: str) -> Any:
    if name in _API:
        from nipad import api

        return getattr(api, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_API} - {"Any", "TYPE_CHECKING"})
