"""Fixtures for the `acr-gc plan` tests: one Prefect server, a recording proxy, the CLI.

* ``prefect_api_url`` (session): ONE ``prefect_test_harness`` (temporary SQLite, server
  subprocess) for the whole run; CLI subprocesses get its URL as ``PREFECT_API_URL`` so
  none of them starts its own temporary server.
* ``plan_cli.proxy``: tests/proxy_kit.py's ``RecordingProxy`` put between the CLI and the
  emulator; it records ``(service, method, path, query, action)`` of every request.
* ``run_cli``: ``python -m acr_gc.cli ...`` as a subprocess, the way an operator runs it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from proxy_kit import RecordingProxy

# Prefect reads its settings when first imported: give the whole session a private home
# and no analytics before anything imports it; never talk to an operator's own server.
_PREFECT_HOME = tempfile.mkdtemp(prefix="acr-gc-test-prefect-home-")
os.environ["PREFECT_HOME"] = _PREFECT_HOME
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ.pop("PREFECT_API_URL", None)
os.environ.pop("PREFECT_API_KEY", None)

ROOT = Path(__file__).resolve().parents[2]


# prefect_api_url: the session-wide server of tests/conftest.py


def cli_env(prefect_api_url: str | None, access_key_id: str, secret: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALIBABA_CLOUD_", "PREFECT_API_"))}
    env.update(
        ALIBABA_CLOUD_ACCESS_KEY_ID=access_key_id,
        ALIBABA_CLOUD_ACCESS_KEY_SECRET=secret,
        PREFECT_HOME=_PREFECT_HOME,
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PYTHONPATH=str(ROOT),
        COLUMNS="200",
    )
    if prefect_api_url:
        env["PREFECT_API_URL"] = prefect_api_url
    return env


def run_cli(args: list[str], env: dict[str, str], cwd: Path | None = None, timeout: float = 120):
    return subprocess.run(
        [sys.executable, "-m", "acr_gc.cli", *args],
        env=env,
        cwd=cwd or ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# ---- the helpers as fixtures (test modules cannot import a conftest by name) ---------


@pytest.fixture(scope="session")
def plan_cli():
    """``plan_cli.env(prefect_api_url, ak, secret)``, ``plan_cli.run(args, env)``,
    ``plan_cli.proxy(upstream, service)``."""

    class _Cli:
        env = staticmethod(cli_env)
        run = staticmethod(run_cli)
        proxy = RecordingProxy

    return _Cli
