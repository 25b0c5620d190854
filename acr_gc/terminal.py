"""The seat at a terminal (``acr-gc run``, ``acr-gc demo``): progress bars and the y/N.

On a terminal, long work draws a ``rich`` progress bar (done / total, elapsed, ETA); when
standard output is a file or a pipe, a plain line now and then goes to standard error
instead (beside Prefect's log lines), with no control characters, so that standard
output stays what scripts read: the three result lines and the run folder, last.

The plan's approval: ``--approve`` says yes in advance; otherwise, on a terminal, the
headline is shown and the person answers y/N (anything but yes is no); with no terminal
to ask, the answer is no at once (a scheduled job must say ``--approve``).
"""

from __future__ import annotations

import getpass
import sys
import threading
import time

from acr_gc.seat import Decision, Progress, Seat

PLAIN_EVERY_S = 2.0  # a plain line at most this often per bar (and one at the end)


def _who() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no user name in a container: still an answer from this terminal
        return "unknown-user"


class _RichBar(Progress):
    def __init__(self, what: str, total: float | None, unit: str, file):
        from rich.console import Console
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress as RichProgress, TaskProgressColumn,
                                   TextColumn, TimeElapsedColumn, TimeRemainingColumn)

        self._progress = RichProgress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                      TextColumn(unit), TaskProgressColumn(), TimeElapsedColumn(),
                                      TimeRemainingColumn(), console=Console(file=file), redirect_stderr=False)
        self._task = self._progress.add_task(what, total=total)
        self._progress.start()

    def update(self, completed: float, total: float | None = None) -> None:
        if total is not None:
            self._progress.update(self._task, total=total)
        self._progress.update(self._task, completed=completed)

    def close(self) -> None:
        self._progress.refresh()
        self._progress.stop()


class _PlainBar(Progress):
    def __init__(self, what: str, total: float | None, unit: str, file):
        self._what, self._total, self._unit, self._file = what, total, unit, file
        self._lock = threading.Lock()
        self._completed: float = 0
        self._printed: tuple | None = None
        self._last = 0.0

    def update(self, completed: float, total: float | None = None) -> None:
        with self._lock:
            self._completed = completed
            if total is not None:
                self._total = total
            if time.monotonic() - self._last >= PLAIN_EVERY_S:
                self._print()

    def close(self) -> None:
        with self._lock:
            self._print()

    def _print(self) -> None:
        shown = (self._completed, self._total)
        if shown == self._printed:
            return
        of = "" if self._total is None else f"/{self._total:g}"
        pct = f" ({100 * self._completed / self._total:.0f}%)" if self._total else ""
        print(f"{self._what}: {self._completed:g}{of} {self._unit}{pct}", file=self._file, flush=True)
        self._printed, self._last = shown, time.monotonic()


class TerminalSeat(Seat):
    def __init__(self, approve: bool = False, out=None, inp=None, log=None):
        self.approve = approve
        self.out = out or sys.stdout
        self.inp = inp or sys.stdin
        self.log = log or sys.stderr

    def progress(self, what: str, total: float | None, unit: str) -> Progress:
        if self.out.isatty():
            return _RichBar(what, total, unit, self.out)
        return _PlainBar(what, total, unit, self.log)

    def decide(self, headline: str) -> Decision:
        if self.approve:
            return Decision(True, _who(), "approved in advance with --approve", "--approve")
        if not (self.inp.isatty() and self.out.isatty()):
            return Decision(False, _who(), "no terminal to ask and no --approve (run it with --approve to approve "
                                           "in advance)", "no-terminal")
        print(headline, file=self.out, flush=True)
        print("Approve this plan? [y/N] ", end="", file=self.out, flush=True)
        answer = self.inp.readline().strip().lower()
        approved = answer in ("y", "yes")
        return Decision(approved, _who(), f"answered {'yes' if approved else 'no'} at the terminal", "terminal")
