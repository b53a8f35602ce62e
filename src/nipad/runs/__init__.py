"""A run directory's storage: its record, weights, integrity manifest and lock, feature cache, trained images."""
