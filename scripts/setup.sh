#!/usr/bin/env bash
# Create .venv and install acr-gc into it (with the test and postgres extras when called as `setup.sh test`),
# every dependency at the version constraints.txt pins (scripts/refresh-constraints.sh refreshes it).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
[ -x .venv/bin/python ] || "$PY" -m venv .venv
extras=""
# the tests/postgres tests talk to PostgreSQL through psycopg 3 (the "postgres" extra)
[ "${1:-}" = "test" ] && extras="[test,postgres]"
.venv/bin/python -m pip install -q --disable-pip-version-check -c constraints.txt -e ".${extras}"
# pip compiles the dependencies it installs, but not an editable project's own sources: without
# this, every process (each CLI command, emulator and test child) compiles acr_gc again when
# PYTHONDONTWRITEBYTECODE is set, as it is in many CI images.
.venv/bin/python -m compileall -q acr_gc tests
