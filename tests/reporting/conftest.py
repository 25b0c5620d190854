"""Fixtures of the reporting pipeline tests (tests/reporting/test_reporting_*.py).

* ``prefect_api_url`` (session): ONE ``prefect_test_harness`` (temporary SQLite, server
  subprocess) for the session. Flows run in the test process against it; CLI
  subprocesses get its URL as ``PREFECT_API_URL``.
* ``reporting_support`` (this folder) is importable by name: the hand-worked dataset,
  its arithmetic, configs and the CLI helpers.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

# Prefect reads its settings when first imported: a private home, no analytics, never an
# operator's own server (as tests/pipeline/conftest.py and tests/plan/conftest.py do).
if "acr-gc-test-prefect-home-" not in os.environ.get("PREFECT_HOME", ""):
    os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="acr-gc-test-prefect-home-")
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ.pop("PREFECT_API_URL", None)
os.environ.pop("PREFECT_API_KEY", None)


# prefect_api_url: the session-wide server of tests/conftest.py
