#!/usr/bin/env bash
# The main job on a fresh machine: install qconnect into .venv and run the seed's three
# scenarios end to end (embedded switch, scripted phones, narrated), writing a report.
# Extra arguments go to `qconnect demo` (e.g. --out DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/venv.sh .
exec .venv/bin/qconnect demo "$@"
