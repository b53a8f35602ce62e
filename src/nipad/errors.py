"""Errors nipad raises for bad user input. The CLI prints their message (no traceback) and exits non-zero."""


class NipadError(Exception):
    """Base class: a problem the user can fix; the message names the file or setting and the fix."""


class DataError(NipadError):
    """A data set, image or mask cannot be used as given."""


class CheckpointError(NipadError):
    """A run directory or checkpoint is missing, corrupt or from an incompatible model."""


class ConfigError(NipadError):
    """A setting has an invalid value."""


class OutputError(NipadError, OSError):
    """An output file or folder cannot be written (no such folder, no permission, disk full); still an OSError."""


class TrainingError(NipadError):
    """Training ran but gave a model that cannot be used (e.g. its anomaly map is noise on its own validation set)."""
