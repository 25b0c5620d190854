"""Running the GC task: recorded before it starts, watched until it ends.

``start_gc`` and ``watch_gc`` run in the flow's own thread (the console driver pauses
the flow, which only a flow can do; a SIGTERM from Prefect's cancellation reaches the
watch loop there, so ``bucket_frozen`` cancels the task and thaws once it has ended).
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.context import FlowRunContext

from acr_gc.config import Config
from acr_gc.gc import TERMINAL_STATES, GcDriver, GcStatus
from acr_gc.ledger import Ledger
from acr_gc.ledger.gc_tasks import add_gc_task, record_gc_status

log = logging.getLogger(__name__)


@dataclass
class GcOutcome:
    status: GcStatus
    ledger_id: int
    timed_out: bool = False
    cancelled_by_flow: bool = False


Started = Callable[[GcStatus, int], None]


def start_gc(config: Config, ledger: Ledger, run_id: str, driver: GcDriver,
             on_started: Started = lambda status, row_id: None) -> tuple[GcStatus, int]:
    """Start (or attach to) the instance's GC task; the intent is in the ledger first,
    with a client token the driver starts the task with (a repeated start answers that
    task). ``on_started(status, row_id)`` hears of the running task before the ledger is
    written again: if that write fails, the task is already watched (cancelled, and the
    bucket kept frozen until it has ended), never left running unseen."""
    client_token = secrets.token_hex(16)
    row_id = add_gc_task(ledger, run_id=run_id, instance_id=config.target.instance_id, driver=driver.name,
                         state="intent", client_token=client_token)
    status = driver.start(client_token)
    on_started(status, row_id)
    record_gc_status(ledger, row_id, status)
    return status, row_id


def adopt_gc(config: Config, ledger: Ledger, run_id: str, driver: GcDriver, task_id: str,
             on_started: Started = lambda status, row_id: None) -> tuple[GcStatus, int]:
    """Take over a killed run's GC task: recorded under this run, watched, never started again."""
    status = driver.status(task_id)
    row_id = add_gc_task(ledger, run_id=run_id, instance_id=config.target.instance_id, driver=driver.name,
                         state=status.state, task_id=task_id)
    on_started(status, row_id)
    record_gc_status(ledger, row_id, status)
    return status, row_id


def watch_gc(
    config: Config,
    ledger: Ledger,
    driver: GcDriver,
    started: GcStatus,
    row_id: int,
    cancel_requested: Callable[[], bool] = lambda: False,
    on_progress: Callable[[GcStatus], None] | None = None,
) -> GcOutcome:
    """Poll until the task ends, the timeout passes, or the flow run is being cancelled."""
    in_flow = FlowRunContext.get() is not None
    artifact_id = (
        create_progress_artifact(progress=float(started.progress or 0), description="GC task progress")
        if in_flow
        else None
    )
    deadline = time.monotonic() + config.gc.timeout.total_seconds()
    status = started
    while True:
        status = driver.status(status.task_id) if status.state not in TERMINAL_STATES else status
        record_gc_status(ledger, row_id, status)
        if artifact_id is not None:
            update_progress_artifact(artifact_id=artifact_id, progress=float(status.progress or 0))
        if on_progress is not None:
            on_progress(status)
        if status.state in TERMINAL_STATES:
            return GcOutcome(status, row_id)
        if cancel_requested():
            log.warning("flow run is being cancelled: cancelling GC task %s", status.task_id)
            return GcOutcome(_cancel_and_wait(config, ledger, driver, status, row_id), row_id, cancelled_by_flow=True)
        if time.monotonic() >= deadline:
            if config.gc.on_timeout == "cancel":
                log.error("GC task %s passed gc.timeout: cancelling it", status.task_id)
                status = _cancel_and_wait(config, ledger, driver, status, row_id)
            else:
                log.error("GC task %s passed gc.timeout: left running (gc.on_timeout: leave)", status.task_id)
            return GcOutcome(status, row_id, timed_out=True)
        time.sleep(config.gc.poll_interval.total_seconds())


def _cancel_and_wait(config: Config, ledger: Ledger, driver: GcDriver, status: GcStatus, row_id: int) -> GcStatus:
    """Ask the driver to cancel, then wait a bounded time for the task to say it stopped."""
    status = driver.cancel(status.task_id) or status
    deadline = time.monotonic() + max(30.0, 10 * config.gc.poll_interval.total_seconds())
    while status.state not in TERMINAL_STATES and time.monotonic() < deadline:
        time.sleep(min(1.0, config.gc.poll_interval.total_seconds()))
        status = driver.status(status.task_id)
    record_gc_status(ledger, row_id, status)
    return status
