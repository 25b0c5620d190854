#!/usr/bin/env bash
# Set everything up on a fresh machine (Python 3.11) and run the main job: `acr-gc demo`
# on the bundled emulator. Usage: bash scripts/demo.sh [--out DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/acr-gc demo "$@"
