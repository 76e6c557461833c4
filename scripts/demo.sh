#!/usr/bin/env bash
# The main job on a fresh machine: install qconnect into .venv and run the built-in demo lab.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/venv.sh .
exec .venv/bin/qconnect serve "$@"
