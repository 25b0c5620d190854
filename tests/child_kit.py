"""``Child``: a subprocess a test starts and must be sure to end (``acr-gc run``, a Prefect
worker, a server), in its own session and process group so that the whole tree it
starts can be signalled at once, with its output in a file (never a pipe that fills up
and blocks it). Used by the crash, kill and concurrency tests and the deployment tests.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]  # the project: where acr-gc and prefect.yaml are found


class Child:
    """A subprocess in its own session/process group, output to a file (never a full pipe)."""

    def __init__(self, args: list[str], env: dict[str, str], log_path: Path, cwd: Path = ROOT):
        self.args = args
        self.log_path = log_path
        with open(log_path, "wb") as log:
            self.proc = subprocess.Popen(args, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        self.pid = self.proc.pid

    def output(self, chars: int = 6000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def poll(self) -> int | None:
        return self.proc.poll()

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout)

    def kill_group(self, sig: int = signal.SIGKILL) -> None:
        try:
            os.killpg(self.pid, sig)
        except ProcessLookupError:
            pass

    def stop(self, term_seconds: float = 15.0) -> None:
        """SIGTERM the whole group, wait, then SIGKILL whatever is left of it (servers,
        flow-run children); reap the leader."""
        if self.proc.poll() is None:
            self.kill_group(signal.SIGTERM)
            try:
                self.proc.wait(term_seconds)
            except subprocess.TimeoutExpired:
                pass
        self.kill_group(signal.SIGKILL)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            pass


def wait_for(what: str, predicate: Callable[[], Any], timeout: float, diagnostics: Callable[[], str],
             interval: float = 0.5):
    """Poll ``predicate`` until it returns something truthy (returned); on timeout fail with
    ``diagnostics()`` (the children's output tails, say)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{diagnostics()}")
        time.sleep(interval)
