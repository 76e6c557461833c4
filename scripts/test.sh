#!/usr/bin/env bash
# The one command that installs everything the tests need and runs them (README, .ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-system-deps.sh
./scripts/venv.sh '.[test]'
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
# Independent tests run in parallel on every core; interop tests start real clients.
exec .venv/bin/pytest -n "${QCONNECT_TEST_WORKERS:-auto}" --dist loadfile -q -ra "$@"
