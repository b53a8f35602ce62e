"""nipad's model families, one module each, registered in nipad.families.registry when this package is imported.

Adding a model is one module here (its options dataclass, their conversion to its training config, its train and
load, and `register(FAMILY)`), named in MODULES, plus its tests.
"""

from importlib import import_module

from nipad.families.registry import (
    CommonOptions,
    Family,
    all_models,
    families,
    family_named,
    family_of_model,
    load_run,
    register,
    unregister,
)

MODULES = ("onenip_family", "anomalysd_family", "patchcore_family", "padim_family", "knn_family")
"""The family modules nipad ships, in the order `--model` offers their models."""

for _module in MODULES:
    import_module(f"{__name__}.{_module}")

__all__ = ["CommonOptions", "Family", "all_models", "families", "family_named", "family_of_model", "load_run",
           "register", "unregister"]
