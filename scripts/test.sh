#!/usr/bin/env bash
# Set everything up on a fresh machine (Python 3.11) and run the whole test suite,
# slow end-to-end tests included. Usage: bash scripts/test.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
