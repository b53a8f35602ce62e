"""The one base of every settings dataclass saved in a run's config.json (model, training, baseline, AnomalySD): the
dict round trip and overrides, written once."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, fields, replace
from typing import Any, ClassVar, Self, cast

from nipad.errors import ConfigError


class Settings:
    """Mixin for frozen dataclasses. `settings_name` is what a refusal calls them ("unknown training settings ...");
    `recorded_keys` are keys to_dict adds besides the fields (e.g. "model"), which from_dict accepts and drops."""

    settings_name: ClassVar[str] = ""
    recorded_keys: ClassVar[frozenset[str]] = frozenset()

    def to_dict(self) -> dict[str, Any]:
        return asdict(cast(Any, self))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Inverse of to_dict; a key that is no setting (a run of another nipad version) is a ConfigError."""
        known = {f.name for f in fields(cast(Any, cls))}
        unknown = set(data) - known - cls.recorded_keys
        if unknown:
            raise ConfigError(f"unknown {cls.settings_name} settings {sorted(unknown)}: the run is from another nipad "
                              "version")
        return cls(**{k: v for k, v in data.items() if k in known})

    def with_overrides(self, **overrides: Any) -> Self:
        """A copy with the given settings changed; None values are ignored (an option left unset)."""
        return replace(cast(Any, self), **{k: v for k, v in overrides.items() if v is not None})
