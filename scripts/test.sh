#!/usr/bin/env bash
# Make or reuse .venv/, run the linters (ruff, mypy; configured in pyproject.toml) and the test suite (what CI runs).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check src tests || { echo "nipad: lint check failed: ruff check src tests (see above)" >&2; exit 1; }
.venv/bin/mypy src || { echo "nipad: type check failed: mypy src (see above)" >&2; exit 1; }
# The browser tests (report.html, the service's operator page and /docs) drive headless Chromium (Debian packages
# chromium, chromium-driver).
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
    echo "nipad: installing chromium and chromedriver for the browser tests" >&2
    sudo=""
    if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then sudo="sudo"; fi
    { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium chromium-driver; } \
        >/dev/null 2>&1 || echo "nipad: could not install chromium with apt-get; the browser test will fail" >&2
fi
exec .venv/bin/python -m pytest -q "$@"
