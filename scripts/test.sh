#!/usr/bin/env bash
# Set everything up on a fresh machine (Python 3.11) and run the whole test suite,
# slow end-to-end tests included. Usage: bash scripts/test.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test
# The report test renders report.html in headless Chromium (Debian's package).
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing chromium for the report rendering test" >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null
  else
    echo "chromium is missing: install Debian's chromium package (the report test needs it)" >&2
  fi
fi
# The PostgreSQL tests (tests/postgres) start a throwaway cluster with Debian's initdb/pg_ctl.
if ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 && ! { command -v pg_ctl && command -v initdb; } >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing postgresql for the PostgreSQL tests" >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) >/dev/null
  else
    echo "PostgreSQL is missing: install Debian's postgresql package (the tests/postgres tests need it)" >&2
  fi
fi
# The suite waits on servers (emulator, Prefect, PostgreSQL) far more than it computes, so it
# runs on ACR_GC_TEST_WORKERS worker processes (default 4, pytest-xdist), one test file per
# worker at a time (--dist loadfile keeps a file's module fixtures in one process), in the
# order tests/conftest.py collects them (longest files first: --no-loadscope-reorder).
# ACR_GC_TEST_WORKERS=0 runs it in this process.
workers=${ACR_GC_TEST_WORKERS:-4}
if [ "$workers" = "0" ]; then
  exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
fi
exec .venv/bin/python -m pytest -q -p no:cacheprovider -n "$workers" --dist loadfile --no-loadscope-reorder "$@"
