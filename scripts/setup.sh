#!/usr/bin/env bash
# Install what SpineAgent needs on Debian 12 as root: system packages, a virtualenv, pinned Python deps.
# Idempotent and quick when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(orthanc orthanc-dicomweb orthanc-python orthanc-postgresql postgresql postgresql-client
              redis-server python3-venv ca-certificates)
# node + npm fetch and prepare the OHIF viewer (scripts/build_viewer.sh). Machines that ship node and npm
# outside Debian's packages keep theirs.
command -v npm >/dev/null || APT_PACKAGES+=(nodejs npm)
if [ "${SPINEAGENT_WITH_BROWSER:-0}" = 1 ]; then
  APT_PACKAGES+=(chromium)
fi

# Test-only tools: docker-compose validates docker/compose.yaml offline (no engine runs here); nginx runs
# docker/nginx/nginx.conf in front of the live server in the attack suite.
[ "${SPINEAGENT_WITH_TEST_TOOLS:-0}" = 1 ] && APT_PACKAGES+=(docker-compose nginx-light)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  if [ "$(id -u)" != 0 ]; then echo "setup: run as root to install system packages" >&2; exit 1; fi
  apt-get update -qq
  # Package post-install scripts try to start services; there is no init system here, which is fine:
  # our scripts start each service as our own process.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
  .venv/bin/pip install -q --upgrade pip setuptools wheel
fi
stamp=.venv/.spineagent-deps
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "setup: installing Python dependencies (pinned in pyproject.toml)"
  # torch first, pinned: its CPU wheel; an open range would pull a multi-GB CUDA build.
  .venv/bin/pip install -q "torch==2.13.0"
  .venv/bin/pip install -q -e ".[test]"
  # timm without its dependencies: its torchvision requirement would pull PyPI's CUDA build, which does
  # not load beside the CPU torch; the model library uses timm's ViT code only, never torchvision
  # (tests/models/test_convert.py compares converted timm checkpoints with timm's own forward pass).
  .venv/bin/pip install -q --no-deps "timm==1.0.31"
  touch "$stamp"
fi

# The prebuilt OHIF viewer and our extension's npm packages (quick when already done).
bash scripts/build_viewer.sh
