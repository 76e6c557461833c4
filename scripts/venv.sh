#!/usr/bin/env bash
# Creates .venv (Python >= 3.11) if needed and installs qconnect into it with the given extras.
set -euo pipefail
cd "$(dirname "$0")/.."
spec=${1:-.}
python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "qconnect needs Python >= 3.11; set PYTHON=/path/to/python3.11" >&2
    exit 1
fi
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv || {
        echo "could not create a venv: on Debian/Ubuntu install python3-venv (scripts/install-system-deps.sh does as root)" >&2
        exit 1
    }
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e "$spec"
