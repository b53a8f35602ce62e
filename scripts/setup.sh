#!/usr/bin/env bash
# Make or reuse the environment in .venv/ at the repo root and install nipad into it (editable).
# Torch and torchvision come from this machine's disk (pinned in pyproject.toml); nothing else is downloaded
# but packages from PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
    python3.11 -m venv .venv 2>/dev/null || python3 -m venv .venv
fi
stamp=.venv/.nipad-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "nipad: installing the environment in .venv/ (first time: a few minutes)" >&2
    .venv/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v "^WARNING: Location" >&2 || true
    .venv/bin/python -m pip install -q -e ".[test]" 2>&1 | grep -v "^WARNING: Location" >&2 || true
    .venv/bin/python -c "import nipad, torch, timm" && touch "$stamp"
fi
