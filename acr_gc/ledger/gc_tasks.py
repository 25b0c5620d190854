"""The ledger's GC tasks: the intent written before a task starts, then what it reports.

A row is written *before* the driver starts the task (state ``intent``, with the client
token the start carries), so a process killed in between leaves a trace the next run and
``acr-gc thaw`` find (DESIGN section 6).
"""

from __future__ import annotations

from datetime import datetime, timezone
from sqlalchemy import select

from acr_gc.gc.driver import TERMINAL_STATES, GcStatus
from acr_gc.ledger.models import GcTask
from acr_gc.ledger.store import Ledger


def add_gc_task(ledger: Ledger, *, run_id: str, instance_id: str, driver: str, state: str,
                client_token: str | None = None, task_id: str | None = None) -> int:
    """A new GC task row of the run; returns its id."""
    with ledger.session() as session:
        row = GcTask(run_id=run_id, instance_id=instance_id, driver=driver, client_token=client_token,
                     task_id=task_id, state=state, created_at=datetime.now(timezone.utc))
        session.add(row)
        session.flush()
        return row.id


def record_gc_status(ledger: Ledger, row_id: int, status: GcStatus) -> None:
    """What the driver said of the task: its id, state and counts; ended now if terminal."""
    with ledger.session() as session:
        row = session.get(GcTask, row_id)
        row.task_id = status.task_id
        row.state = status.state
        row.tags_deleted = status.tags_deleted or 0
        row.objects_deleted = status.objects_deleted or 0
        row.bytes_deleted = status.bytes_deleted or 0
        if status.state in TERMINAL_STATES:
            row.finished_at = datetime.now(timezone.utc)


def record_gc_seen_ended(ledger: Ledger, row_id: int, status: GcStatus) -> None:
    """A task found ended after its run stopped watching it (``thaw``, the sampler): its
    final state and tags deleted; an end time already recorded is kept."""
    with ledger.session() as session:
        row = session.get(GcTask, row_id)
        row.state, row.tags_deleted = status.state, status.tags_deleted or 0
        row.finished_at = row.finished_at or datetime.now(timezone.utc)


def open_gc_tasks(ledger: Ledger, instance_id: str) -> list[GcTask]:
    """The instance's GC tasks the ledger does not know to have ended, oldest first."""
    with ledger.session() as session:
        return list(session.scalars(
            select(GcTask).where(GcTask.instance_id == instance_id, GcTask.state.not_in(TERMINAL_STATES))
            .order_by(GcTask.id)))


def latest_gc_task(ledger: Ledger, run_id: str) -> GcTask | None:
    """The run's most recent GC task row."""
    with ledger.session() as session:
        return session.scalars(select(GcTask).where(GcTask.run_id == run_id).order_by(GcTask.id.desc())).first()
