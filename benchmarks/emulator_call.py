"""Raw SDK helpers for benchmarks (the emulator's own GC actions), as the tests' emulator_kit has them."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from emulator_kit import call_gc_action, make_acr_client  # noqa: E402,F401
