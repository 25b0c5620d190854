"""What a new run inherits from runs of the instance that were killed.

Once a run holds the instance lock, every other run of the instance still marked
RUNNING in the ledger is dead. A dead run that never started GC left nothing to finish:
it is closed as FAILED (its freeze, if any, is adopted by ``freeze_bucket``). A dead run
that started GC left a task the new run must finish *instead of* starting another: the
new run takes over that task, the plan it was started from and its baseline sample —
re-planning would see the deleted tags gone and judge the deletions against the wrong
list, and a second GC task is what DESIGN section 2 forbids.

Only an existing task is adopted with its plan (issue 11). A dead run whose GC start has
no task id in the ledger (killed before the answer was recorded) is resolved by asking the
driver which task that start created — by the client token the intent row carries, in
whatever state, since a task that has ended meanwhile still did that run's deletions —
or else which task is active: one is found → it is that run's, and is adopted; none → no
GC ever started, so the run is closed like one that never got that far and the new run
plans afresh, with its full gate — never a new GC from an inherited plan, which may be a
month old while the rules and tags have moved on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from acr_gc.cloud.acr import GcStatus
from acr_gc.ledger import Ledger, Run, Sample
from acr_gc.ledger.gc_tasks import latest_gc_task
from acr_gc.ledger.plans import load_plan
from acr_gc.ledger.runs import close_dead_run, running_runs
from acr_gc.ledger.samples import baseline_of

log = logging.getLogger(__name__)


@dataclass
class Inherited:
    """A killed run's GC, to be finished by the run that took the instance over."""

    run: Run
    task_id: str  # the task, as the ledger recorded it or as the driver found it active
    verdicts: pd.DataFrame  # the killed run's plan
    before: Sample  # its baseline sample


def take_over_dead_runs(ledger: Ledger, instance_id: str, run_id: str,
                        *, started_task: Callable[[str | None], GcStatus | None]) -> Inherited | None:
    """Close the instance's dead runs; return the one whose GC this run must finish.

    ``started_task(client_token)`` (the driver's): asked only for a dead run whose GC start
    has no task id; it raising leaves that run open for the next attempt (nothing was decided)."""
    dead = running_runs(ledger, instance_id, excluding=run_id)
    inherited = None
    for run in dead:
        found = None if inherited else _gc_of(ledger, run, started_task)
        if found is not None:
            inherited = found
            note = f"interrupted (its process is gone); run {run_id} took over its GC task {found.task_id}"
        else:
            note = f"interrupted (its process is gone) before its GC started; superseded by run {run_id}"
        close_dead_run(ledger, run.run_id, note)
        log.warning("run %s: %s", run.run_id, note)
    return inherited


def _gc_of(ledger: Ledger, run: Run, started_task: Callable[[str | None], GcStatus | None]) -> Inherited | None:
    task = latest_gc_task(ledger, run.run_id)
    before = baseline_of(ledger, run.run_id)
    if task is None or before is None:
        return None
    verdicts = load_plan(ledger, run.run_id)
    if verdicts is None:
        return None
    task_id = task.task_id
    if task_id is None:  # started or not? Only a task that exists is adopted
        started = started_task(task.client_token)
        if started is None:
            log.warning("run %s recorded a GC start whose task id never came, no task was started with its client "
                        "token and none is active: no GC started, so its plan is not inherited; this run plans "
                        "afresh", run.run_id)
            return None
        task_id = started.task_id
    return Inherited(run=run, task_id=task_id, verdicts=verdicts, before=before)
