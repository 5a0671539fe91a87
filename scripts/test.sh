#!/usr/bin/env bash
# Run the whole test suite against real PostgreSQL, Redis and Orthanc (started when absent).
set -euo pipefail
cd "$(dirname "$0")/.."
SPINEAGENT_WITH_BROWSER=${SPINEAGENT_WITH_BROWSER:-1} SPINEAGENT_WITH_TEST_TOOLS=1 bash scripts/setup.sh
.venv/bin/python -m backend.devstack prepare
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
exec .venv/bin/pytest "$@"
