"""The ledger's runs: opening, updating, listing them, and every change of a run's state.

A run's state changes only here (:func:`move_run`), and only along the moves
:mod:`acr_gc.ledger.states` allows; :func:`update_run` sets any other column and refuses
the state. The flow and the CLI call :func:`close_window` to make a GC_DONE run COMPLETE
once its release window is sampled past its end; report building reads and renders the
state, never changes it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from acr_gc.ledger.models import Run
from acr_gc.ledger.samples import load_samples
from acr_gc.ledger.store import Ledger
from acr_gc.rules.figures import storage_figures
from acr_gc.ledger.states import GC_ENDED, RunState, check_transition


def open_run(ledger: Ledger, run_id: str, *, instance_id: str, bucket: str, region: str, state: RunState,
             started_at: datetime, flow_run_id: str | None, out_dir: str, price_per_gb_month: float,
             currency: str) -> None:
    """The run's row, written when its flow starts (RUNNING, or BLOCKED when the instance
    is busy); a run id seen before is written over (a retried flow run)."""
    with ledger.session() as session:
        session.merge(Run(run_id=run_id, instance_id=instance_id, bucket=bucket, region=region,
                          state=RunState(state), started_at=started_at, flow_run_id=flow_run_id, out_dir=out_dir,
                          price_per_gb_month=price_per_gb_month, currency=currency))


def get_run(ledger: Ledger, run_id: str) -> Run | None:
    with ledger.session() as session:
        return session.get(Run, run_id)


def update_run(ledger: Ledger, run_id: str, **fields) -> None:
    """Set columns of the run (its plan, GC times, …); the state moves only by :func:`move_run`."""
    if "state" in fields:
        raise ValueError("a run's state changes only through move_run, which checks the move")
    with ledger.session() as session:
        run = _locked(session, run_id)
        for name, value in fields.items():
            setattr(run, name, value)


def move_run(ledger: Ledger, run_id: str, to: RunState | str, **fields) -> RunState:
    """Record the run in state ``to`` (with other columns, e.g. its message and end time).

    Raises :class:`~acr_gc.ledger.states.IllegalTransition` (nothing written) when the
    table of moves does not allow it, LookupError for an unknown run."""
    with ledger.session() as session:
        run = _locked(session, run_id)
        run.state = check_transition(run.state, to)
        for name, value in fields.items():
            setattr(run, name, value)
        return run.state


def close_window(ledger: Ledger, run_id: str, now: datetime | None = None) -> RunState:
    """GC_DONE → COMPLETE once the release window is complete (an "after" sample at or
    past its end, and the cloud's clock ``now`` past it; None: the latest sample's time);
    returns the run's state, moved or not. Any other state is left as it is."""
    with ledger.session() as session:
        run = _locked(session, run_id)
        if run.state is not RunState.GC_DONE:
            return run.state
        figures = storage_figures(load_samples(session, run_id), gc_started_at=run.gc_started_at,
                                  gc_finished_at=run.gc_finished_at, window_end=run.window_end, now=now,
                                  price_per_gb_month=run.price_per_gb_month, currency=run.currency)
        if figures.window_complete:
            run.state = check_transition(run.state, RunState.COMPLETE)
        return run.state


def close_dead_run(ledger: Ledger, run_id: str, note: str) -> None:
    """A run whose process is gone, superseded by the run holding the instance now: FAILED."""
    move_run(ledger, run_id, RunState.FAILED, message=note, finished_at=datetime.now(timezone.utc))


def all_runs(ledger: Ledger) -> list[Run]:
    """Every run of every instance, oldest first (``acr-gc status``)."""
    with ledger.session() as session:
        return list(session.scalars(select(Run).order_by(Run.started_at, Run.run_id)))


def open_windows(ledger: Ledger, instance_id: str) -> list[Run]:
    """The instance's runs whose GC is done and whose report is not final yet, oldest first."""
    with ledger.session() as session:
        return list(session.scalars(
            select(Run).where(Run.instance_id == instance_id, Run.state == RunState.GC_DONE).order_by(Run.started_at)
        ))


def running_runs(ledger: Ledger, instance_id: str, *, excluding: str) -> list[Run]:
    """The instance's runs still marked RUNNING but ``excluding``, newest first: once a run
    holds the instance lock, these are dead."""
    with ledger.session() as session:
        return list(session.scalars(
            select(Run).where(Run.instance_id == instance_id, Run.state == RunState.RUNNING, Run.run_id != excluding)
            .order_by(Run.started_at.desc())
        ))


def latest_finished_run_id(ledger: Ledger, instance_id: str) -> str | None:
    """The most recently started run of the instance that has finished (not RUNNING)."""
    with ledger.session() as session:
        return session.execute(
            select(Run.run_id)
            .where(Run.instance_id == instance_id, Run.state != RunState.RUNNING)
            .order_by(Run.started_at.desc(), Run.run_id.desc())
            .limit(1)
        ).scalar_one_or_none()


def record_savings_once(ledger: Ledger, run_id: str, append: Callable[[Run, pd.DataFrame], bool]) -> bool:
    """Exactly once per run: ``append(run, samples)`` writes the savings.csv row (True when
    it did); the run's ``savings_recorded`` flag is set in the same transaction, committed
    after the append. The run is read ``SELECT … FOR UPDATE`` where the database has it, so
    two callers racing on PostgreSQL take turns. Returns True when this call recorded it."""
    with ledger.session() as session:
        run = _locked(session, run_id)
        if run.savings_recorded or run.state not in GC_ENDED:
            return False
        if not append(run, load_samples(session, run_id)):
            return False
        run.savings_recorded = True  # committed when the session closes, after the append
    return True


def _locked(session: Session, run_id: str) -> Run:
    run = session.execute(select(Run).where(Run.run_id == run_id).with_for_update()).scalar_one_or_none()
    if run is None:
        raise LookupError(f"no run {run_id!r} in the ledger")
    return run
