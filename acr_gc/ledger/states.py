"""A run's states and the moves between them: the one place they are written down.

A run is RUNNING while its flow works, then ends in one of BLOCKED, REJECTED, FAILED,
CANCELED (nothing reclaimed) or GC_DONE (GC ran; the release window is being sampled).
A GC_DONE run becomes COMPLETE once its window has closed: the report is final.
PLANNED is the state of an ``acr-gc plan`` summary.json: no ledger run is ever PLANNED.

The values are the strings the ledger's ``runs.state`` column and summary.json hold: a
``RunState`` member *is* its name (a ``StrEnum``), so files and rows stay byte-identical.

The allowed moves are :data:`TRANSITIONS`; :func:`acr_gc.ledger.runs.move_run` refuses
any other, so a bug cannot turn a finished run back into a running one. Pure: no I/O,
and no import beyond the standard library (the ledger's models use it, and importing the
ledger must stay light: no pandas).
"""

from __future__ import annotations

from enum import StrEnum


class RunState(StrEnum):
    RUNNING = "RUNNING"
    PLANNED = "PLANNED"
    BLOCKED = "BLOCKED"
    REJECTED = "REJECTED"
    FAILED = "FAILED"
    CANCELED = "CANCELED"
    GC_DONE = "GC_DONE"
    COMPLETE = "COMPLETE"


S = RunState

# From each state, where a run may go next (besides staying where it is).
TRANSITIONS: dict[RunState, frozenset[RunState]] = {
    S.RUNNING: frozenset({S.BLOCKED, S.REJECTED, S.FAILED, S.CANCELED, S.GC_DONE}),
    # COMPLETE: the window closed. FAILED/CANCELED: the flow that ended GC failed or was
    # cancelled before it returned (its report, its savings row), as a run in progress does.
    S.GC_DONE: frozenset({S.COMPLETE, S.FAILED, S.CANCELED}),
    S.COMPLETE: frozenset({S.FAILED, S.CANCELED}),  # the same flow, sampling inline
    S.PLANNED: frozenset(),
    S.BLOCKED: frozenset(),
    S.REJECTED: frozenset(),
    S.FAILED: frozenset(),
    S.CANCELED: frozenset(),
}

FINISHED = frozenset(set(RunState) - {S.RUNNING})  # a report can be built
GC_ENDED = frozenset({S.GC_DONE, S.COMPLETE})  # GC finished: the runs with a saving (exit 0)


class IllegalTransition(ValueError):
    """A move the table does not allow (a bug, or two processes disagreeing)."""


def allowed(src: RunState | str, dst: RunState | str) -> bool:
    """True when a run in ``src`` may be recorded as ``dst`` (the same state again is no move)."""
    src, dst = RunState(src), RunState(dst)
    return src is dst or dst in TRANSITIONS[src]


def check_transition(src: RunState | str, dst: RunState | str) -> RunState:
    """``dst`` as a :class:`RunState`, or :class:`IllegalTransition` naming the move."""
    if not allowed(src, dst):
        raise IllegalTransition(f"a run cannot move {RunState(src).value} → {RunState(dst).value}")
    return RunState(dst)
