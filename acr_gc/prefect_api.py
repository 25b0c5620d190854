"""Which Prefect API a command talks to — and, when there is none, a temporary server
that is started early, given the time a busy small machine needs, and stopped at exit.

Prefect's own fallback (its "ephemeral" server) starts only when the first flow call
needs it, after the parent process has imported the whole server package for nothing,
and gives it 20 s: on a 2-core machine that is 7–16 s of dead time per command and a
random failure whenever the machine is busy. So the CLI decides first, in this order:

1. the user's own ``PREFECT_API_URL`` (environment or Prefect profile) — always wins;
2. a Prefect server already answering on this machine at ``PREFECT_SERVER_API_HOST`` /
   ``PREFECT_SERVER_API_PORT`` (``prefect server start``): reused, and it also keeps a
   second server off the same SQLite database;
3. otherwise a temporary server of our own, spawned *before* the command imports its
   flows and reads its config, so its start-up overlaps that work; it is stopped when
   the command ends (and dies with it if the command is killed), so nothing is left
   running that the user did not ask for.

The temporary server's own output goes to ``$PREFECT_HOME/logs/acr-gc-temporary-server.log``,
never to the user's terminal, and Prefect's telemetry is off unless the user turned it on.
"""

from __future__ import annotations

import atexit
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

DEFAULT_STARTUP_TIMEOUT_S = 300  # a cold start took 170 s on a 2-core machine at load 14; 20 s is Prefect's
TIMEOUT_SETTING = "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"


class PrefectApiUnavailable(RuntimeError):
    """The temporary server did not come up: one line naming the setting and the log."""


CLIENT_RETRIES = 7  # Prefect's is 5: 2 + 4 + ... + 32 s of backoff; 7 rides out ~4 min


def quiet_defaults() -> None:
    """Defaults for every command, set before Prefect reads its settings; a value the user
    set in the environment wins. Telemetry off (it logs ERROR lines and tracebacks when the
    machine has no internet); acr-gc's own step loggers forwarded to the flow run's logs;
    and more retries of the Prefect API's "try again" answers (503, 429, 502, 408): a local
    server on SQLite answers 503 while its database is locked, which on a busy machine
    outlasted Prefect's one minute of retries and failed a run at its start."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "acr_gc")
    os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")
    os.environ.setdefault("PREFECT_CLIENT_MAX_RETRIES", str(CLIENT_RETRIES))


def _healthy(api_url: str, timeout: float = 0.5) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=timeout) as response:
            return response.status == 200
    except (OSError, ValueError):
        return False


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: the server gets SIGTERM when the command's process dies, even by SIGKILL."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class TemporaryServer:
    """``uvicorn prefect.server.api.server:create_app`` on a free loopback port, the same
    app Prefect's ephemeral mode runs (UI off), with its output sent to a log file."""

    def __init__(self, home: Path) -> None:
        self.log_path = home / "logs" / "acr-gc-temporary-server.log"
        self.process: subprocess.Popen | None = None
        self.port = 0

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def spawn(self, again: bool = False) -> None:
        """Start uvicorn on a port that was free a moment ago. Until uvicorn binds it (a
        second or more of imports later) the port is anyone's: on a busy machine an
        outgoing connection may take it, and uvicorn then exits 3 (:meth:`wait_ready`
        starts it ``again`` on another port, keeping the first attempt's log)."""
        self.port = _free_port()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1",
               "PREFECT__SERVER_FINAL": "1"}
        env.pop("PREFECT_API_URL", None)
        with open(self.log_path, "ab" if again else "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "--factory", "prefect.server.api.server:create_app",
                 "--host", "127.0.0.1", "--port", str(self.port), "--log-level", "error", "--lifespan", "on"],
                env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
            )

    def wait_ready(self, timeout_s: float, timeout_is_users: bool) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                if self.process.returncode == 3:  # uvicorn: the port was taken meanwhile
                    self.spawn(again=True)
                    continue
                raise PrefectApiUnavailable(
                    f"the temporary Prefect server exited with code {self.process.returncode} while starting "
                    f"(its log: {self.log_path}); set PREFECT_API_URL to a running server to use that instead"
                )
            if _healthy(self.api_url, timeout=1.0) and self._listens_on_its_port():
                return
            time.sleep(0.1)
        whose = "your" if timeout_is_users else "acr-gc's default"
        raise PrefectApiUnavailable(
            f"the temporary Prefect server did not answer within {timeout_s:g} s ({whose} {TIMEOUT_SETTING}; "
            f"raise it, or set PREFECT_API_URL to a running server; its log: {self.log_path})"
        )

    def _listens_on_its_port(self) -> bool:
        """The answer came from our uvicorn, not from a server (another command's, say) that
        took the port while ours was still importing: ours holds the listening socket.
        When the system will not say (no permission), the health answer has to do."""
        import psutil

        try:
            sockets = psutil.Process(self.process.pid).net_connections(kind="tcp")
        except psutil.AccessDenied:
            return True
        except psutil.NoSuchProcess:
            return False
        return any(conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == self.port
                   for conn in sockets)

    def stop(self) -> None:
        if self.process is None:
            return
        drain_prefect_workers()
        process, self.process = self.process, None
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def drain_prefect_workers(timeout_s: float = 10) -> None:
    """Send the events and log lines still queued in this process before their server goes,
    and stop the workers that send them (once the server is gone they retry for a minute
    or more at interpreter exit). They are process-wide and keep the API they started with:
    the next event or log line starts new ones, bound to the API current then."""
    if "prefect" not in sys.modules:
        return
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for worker in (APILogWorker, EventsWorker):
        try:
            worker.drain_all(timeout=timeout_s)
        except Exception:  # best effort: the run's outcome is already on disk and in the ledger
            pass


_server: TemporaryServer | None = None


def use_prefect_api() -> None:
    """Point this process (and its children) at a Prefect API, starting a temporary server
    when there is none (after :func:`quiet_defaults`, which the CLI sets for every command). Returns at once: the server's start-up overlaps the command's own
    work, and :func:`wait_for_prefect_api` waits for it before the first flow call."""
    global _server
    if os.environ.get("PREFECT_API_URL") or _server is not None:
        return
    host = os.environ.get("PREFECT_SERVER_API_HOST", "127.0.0.1")
    port = os.environ.get("PREFECT_SERVER_API_PORT", "4200")
    local = f"http://{host}:{port}/api"
    if _healthy(local, timeout=0.3):
        os.environ["PREFECT_API_URL"] = local
        return
    if "prefect.settings" in sys.modules and _configured_api_url():  # Prefect already set up (in-process use)
        return
    home = Path(os.environ.get("PREFECT_HOME") or Path.home() / ".prefect").expanduser()
    server = TemporaryServer(home)
    server.spawn()  # before importing Prefect: the import and the server's start-up overlap
    atexit.register(server.stop)  # registered before Prefect's own: runs after them
    if _configured_api_url():  # the user's profile names an API: it wins
        server.stop()
        return
    from prefect.context import refresh_global_settings_context

    os.environ["PREFECT_API_URL"] = server.api_url
    refresh_global_settings_context()
    _server = server


@contextmanager
def without_flow_heartbeats() -> Iterator[None]:
    """Run a short, read-only flow (``plan``, ``forecast``) without Prefect's flow-run
    heartbeats, unless the user set ``PREFECT_FLOWS_HEARTBEAT_FREQUENCY``.

    Prefect's heartbeat thread sleeps in one-second steps and the engine joins it when the
    flow ends, so every run ends with up to a second of waiting (0.5 s on average: 3 % of
    a 16 s ``acr-gc plan``). Heartbeats let Prefect mark a run whose process died as
    crashed; a run that changes nothing in the cloud and ends within seconds has nothing
    to recover, and the command's own exit status says how it ended. ``acr-gc run`` and
    the sampling flows keep them."""
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    with temporary_settings(set_defaults={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield


def _configured_api_url() -> str | None:
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value()


def wait_for_prefect_api() -> None:
    """Block until the temporary server answers (no-op when the API is someone else's)."""
    if _server is None or _server.process is None:
        return
    from prefect.settings import get_current_settings

    ephemeral = get_current_settings().server.ephemeral
    users = "startup_timeout_seconds" in ephemeral.model_fields_set
    timeout = ephemeral.startup_timeout_seconds if users else DEFAULT_STARTUP_TIMEOUT_S
    _server.wait_ready(timeout, timeout_is_users=users)
    if os.environ.get("PREFECT_API_URL") != _server.api_url:  # started again on another port
        from prefect.context import refresh_global_settings_context

        os.environ["PREFECT_API_URL"] = _server.api_url
        refresh_global_settings_context()


def stop_temporary_server() -> None:
    """Stop the temporary server when the command ends (at exit at the latest) and take its
    address back out of the environment."""
    global _server
    if _server is None:
        return
    server, _server = _server, None
    server.stop()
    if os.environ.get("PREFECT_API_URL") == server.api_url:
        from prefect.context import refresh_global_settings_context

        del os.environ["PREFECT_API_URL"]
        refresh_global_settings_context()
