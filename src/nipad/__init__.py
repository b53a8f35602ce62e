"""nipad: unified visual anomaly detection (OneNIP, UniAD and baselines), one model for every product type."""

__version__ = "0.1.0"
