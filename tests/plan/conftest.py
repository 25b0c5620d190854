"""Fixtures for the `acr-gc plan` tests: one Prefect server, a recording proxy, the CLI.

* ``prefect_api_url`` (session): ONE ``prefect_test_harness`` (temporary SQLite, server
  subprocess) for the whole run; CLI subprocesses get its URL as ``PREFECT_API_URL`` so
  none of them starts its own temporary server.
* ``RecordingProxy``: a plain HTTP reverse proxy put between the CLI and the emulator. It
  forwards every request byte for byte (Host header included, so signatures still
  verify) and records ``(service, method, path, Action)``: the emulator's truth counts
  requests per service only, the proxy tells which actions were called.
* ``run_cli``: ``python -m acr_gc.cli ...`` as a subprocess, the way an operator runs it.
"""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

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


# ---- recording reverse proxy ---------------------------------------------------------

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}


class RecordingProxy:
    """Forward ``127.0.0.1:<port>`` to ``upstream`` (``host:port``) and record each request."""

    def __init__(self, upstream: str, service: str) -> None:
        self.upstream = upstream
        self.service = service
        self.requests: list[tuple[str, str, str, str]] = []  # (service, method, path, action)
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                split = urlsplit(self.path)
                action = self.headers.get("x-acs-action") or ""  # ACS3 requests (the ACR SDK)
                query = parse_qs(split.query)
                if action:
                    pass
                elif "Action" in query:
                    action = query["Action"][0]
                elif body and b"Action=" in body:
                    action = parse_qs(body.decode("latin-1")).get("Action", [""])[0]
                with proxy._lock:
                    proxy.requests.append((proxy.service, self.command, split.path, action))
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                conn = http.client.HTTPConnection(proxy.upstream, timeout=60)
                try:
                    conn.request(self.command, self.path, body=body, headers=headers)
                    response = conn.getresponse()
                    data = response.read()
                    self.send_response(response.status, response.reason)
                    for key, value in response.getheaders():
                        if key.lower() not in _HOP_BY_HOP and key.lower() != "content-length":
                            self.send_header(key, value)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(data)
                finally:
                    conn.close()

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.endpoint = f"127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "RecordingProxy":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def snapshot(self) -> list[tuple[str, str, str, str]]:
        with self._lock:
            return list(self.requests)


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
