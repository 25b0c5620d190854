"""What a new run inherits from runs of the instance that were killed.

Once a run holds the instance lock, every other run of the instance still marked
RUNNING in the ledger is dead. A dead run that never started GC left nothing to finish:
it is closed as FAILED (its freeze, if any, is adopted by ``freeze_bucket``). A dead run
that started GC left a task the new run must finish *instead of* starting another: the
new run takes over that task, the plan it was started from and its baseline sample —
re-planning would see the deleted tags gone and judge the deletions against the wrong
list, and a second GC task is what DESIGN section 2 forbids.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timezone

import pandas as pd
from sqlalchemy import select

from acr_gc.ledger import GcTask, Ledger, Run, Sample
from acr_gc.ledger.plans import load_plan

log = logging.getLogger(__name__)


@dataclass
class Inherited:
    """A killed run's GC, to be finished by the run that took the instance over."""

    run: Run
    task_id: str | None  # None: the start was recorded but its answer never came
    verdicts: pd.DataFrame  # the killed run's plan
    before: Sample  # its baseline sample


def take_over_dead_runs(ledger: Ledger, instance_id: str, run_id: str) -> Inherited | None:
    """Close the instance's dead runs; return the one whose GC this run must finish."""
    with ledger.session() as session:
        dead = list(session.scalars(
            select(Run).where(Run.instance_id == instance_id, Run.state == "RUNNING", Run.run_id != run_id)
            .order_by(Run.started_at.desc())
        ))
    inherited = None
    for run in dead:
        found = None if inherited else _gc_of(ledger, run)
        if found is not None:
            inherited = found
            note = f"interrupted (its process is gone); run {run_id} took over its GC task {found.task_id}"
        else:
            note = f"interrupted (its process is gone) before its GC started; superseded by run {run_id}"
        with ledger.session() as session:
            row = session.get(Run, run.run_id)
            row.state, row.message, row.finished_at = "FAILED", note, datetime.now(timezone.utc)
        log.warning("run %s: %s", run.run_id, note)
    return inherited


def _gc_of(ledger: Ledger, run: Run) -> Inherited | None:
    with ledger.session() as session:
        task = session.scalars(
            select(GcTask).where(GcTask.run_id == run.run_id).order_by(GcTask.id.desc())
        ).first()
        before = session.scalars(
            select(Sample).where(Sample.run_id == run.run_id, Sample.phase == "before").order_by(Sample.id)
        ).first()
    if task is None or before is None:
        return None
    verdicts = load_plan(ledger, run.run_id)
    if verdicts is None:
        return None
    return Inherited(run=run, task_id=task.task_id, verdicts=verdicts, before=before)
