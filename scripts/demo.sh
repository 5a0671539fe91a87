#!/usr/bin/env bash
# Set up and run the whole SpineAgent stack on this machine with synthetic phantom studies.
# Prints the URL and the demo accounts; Ctrl-C stops everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."
SPINEAGENT_WITH_BROWSER=${SPINEAGENT_WITH_BROWSER:-0} bash scripts/setup.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
exec .venv/bin/python -m backend.devstack demo "$@"
