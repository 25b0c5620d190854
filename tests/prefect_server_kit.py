"""``PrefectServer``: a real ``prefect server start`` for the tests that need a server
process of their own (deployments and workers, the UI, crash and cancel, PostgreSQL).

A free port, a private home (deleted on stop), analytics off, in its own process group so
that stopping it takes its children too. The database is SQLite in the home unless a
``database_url`` is given. The in-process tests use the session's ``prefect_api_url``
(tests/conftest.py) instead.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PrefectServer:
    ATTEMPTS = 3  # a free port may be taken (by any outgoing connection) before the server binds it

    def __init__(self, *, ui: bool = False, database_url: str | None = None, timeout: float = 120.0):
        self.home = Path(tempfile.mkdtemp(prefix="acr-gc-prefect-server-"))
        self.log_path = self.home / "server.log"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "ALIBABA_CLOUD_"))}
        self.env.update(
            PREFECT_HOME=str(self.home),
            PREFECT_SERVER_DATABASE_CONNECTION_URL=database_url or f"sqlite+aiosqlite:///{self.home / 'prefect.db'}",
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            DO_NOT_TRACK="1",
            PYTHONUNBUFFERED="1",
        )
        if not ui:
            self.env["PREFECT_SERVER_UI_ENABLED"] = "false"
        self.ui = ui
        try:
            for attempt in range(1, self.ATTEMPTS + 1):
                self._spawn()
                if self._wait_healthy(timeout, last_attempt=attempt == self.ATTEMPTS):
                    return
        except BaseException:
            self.stop()
            raise

    def _spawn(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.api_url = f"{self.url}/api"
        if self.ui:
            self.env["PREFECT_UI_API_URL"] = self.api_url
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(self.port),
                 "--analytics-off", "--ui" if self.ui else "--no-ui"],
                env=self.env, cwd=self.home, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def _wait_healthy(self, timeout: float, last_attempt: bool) -> bool:
        """True once healthy; False when it exited early and may be started again on another port."""
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                if not last_attempt:
                    return False
                raise RuntimeError(f"prefect server exited (rc {self.proc.returncode}):\n{self.output()}")
            try:
                if httpx.get(f"{self.api_url}/health", timeout=2, trust_env=False).status_code == 200:
                    return True
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"prefect server not healthy after {timeout}s:\n{self.output()}")
            time.sleep(0.5)

    def output(self, chars: int = 5000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self) -> None:
        """SIGTERM the server's process group, then SIGKILL what is left; delete its home."""
        for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 10)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(wait)
                break
            except subprocess.TimeoutExpired:
                pass
        shutil.rmtree(self.home, ignore_errors=True)
