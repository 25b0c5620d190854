"""Fixtures of the PostgreSQL tests (tests/postgres/test_postgres_*.py).

* ``postgres_cluster`` / ``postgres_url`` (session): the throwaway PostgreSQL cluster of
  tests/postgres_kit.py (fails, never skips, when PostgreSQL cannot be started).
* ``prefect_api_url`` (session): the one test server of tests/conftest.py.
* ``reporting_support`` (tests/reporting/) is importable by name: the hand-worked
  instance cri-rep and its arithmetic are reused, not repeated.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "reporting"))

# As the other conftests: a private Prefect home, no analytics, never an operator's server.
if "acr-gc-test-prefect-home-" not in os.environ.get("PREFECT_HOME", ""):
    os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="acr-gc-test-prefect-home-")
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ.pop("PREFECT_API_URL", None)
os.environ.pop("PREFECT_API_KEY", None)

from postgres_kit import postgres_cluster, postgres_url  # noqa: E402,F401 - pytest fixtures
