"""The operator's seat: where a person follows a run and answers for it.

Flows and tasks report long work (inventory, GC watch, sampling) and ask for the plan's
approval through :func:`seat`. The default seat is empty: it draws nothing and decides
nothing, so a flow run on a worker shows no bars and pauses for a ``RunInput`` in the
Prefect UI instead. ``acr-gc run`` installs a seat at the terminal
(:mod:`acr_gc.terminal`), which draws ``rich`` progress bars (or plain lines when its
output is no terminal) and answers the approval from ``--approve`` or a y/N prompt. The
seat is process-wide, not a context variable, because Prefect runs tasks in threads.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Decision:
    """A person's answer to a plan: yes or no, who, why, and how it reached the run."""

    approved: bool
    answered_by: str
    reason: str
    via: str  # prefect | terminal | --approve | no-terminal | timeout


class Progress:
    """One bar of long work; this one draws nothing."""

    def update(self, completed: float, total: float | None = None) -> None:
        """``completed`` of ``total`` units done so far (a total may become known late)."""

    def close(self) -> None:
        """The work ended (done or not): the bar stays as it stands."""


class Seat:
    """Nobody is watching: no progress is drawn and no decision is made here."""

    def progress(self, what: str, total: float | None, unit: str) -> Progress:
        return Progress()

    def decide(self, headline: str) -> Decision | None:
        """The plan's approval, decided here; None: ask through Prefect (a paused flow run)."""
        return None


_installed: Seat = Seat()


def seat() -> Seat:
    return _installed


def install(new: Seat) -> Seat:
    """Make ``new`` the process's seat; returns the one it replaces."""
    global _installed
    previous, _installed = _installed, new
    return previous
