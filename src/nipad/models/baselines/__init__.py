"""The training-free baselines: PatchCore, PaDiM and kNN over one patch-feature template."""
