"""``sample_storage``: the daily sampler of scheduled mode (DESIGN section 7).

The monthly run ends after GC (state GC_DONE); this flow, run daily, takes one storage
sample for every open window of the configured bucket, re-renders each report, and
finalizes a report (COMPLETE, one savings.csv row) when its window has closed. It also
thaws a freeze a run had to leave on the bucket (GC still running when it ended, a killed
process), once the GC task is seen ended — and, with ``freeze.hold_until: window_end``,
once no window is open any more. Running it more often than daily, or twice, is harmless.
The cloud adapters are built once per flow run and handed to the steps.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger

from acr_gc import notify
from acr_gc.cloud.clients import CloudClients
from acr_gc.config import Config
from acr_gc.ledger import Ledger, Run
from acr_gc.ledger.runs import close_window
from acr_gc.ledger.runs import open_windows as runs_with_open_windows
from acr_gc.ledger.states import RunState
from acr_gc.tasks.freeze import settle_freeze
from acr_gc.tasks.sampling import sample_bucket


def open_windows(ledger: Ledger, config: Config) -> list[Run]:
    """Runs of this instance whose GC is done and whose report is not final yet."""
    return runs_with_open_windows(ledger, config.target.instance_id)


def close_or_update(config: Config, ledger: Ledger, run_id: str) -> Path:
    """Close the run's window if it has (GC_DONE → COMPLETE, in the ledger), re-render the
    report from the ledger; a closed window adds its savings row."""
    from acr_gc.reports.build import finalize_savings, render_report

    state = close_window(ledger, run_id)
    folder, summary = render_report(ledger, run_id)
    if state is RunState.COMPLETE and finalize_savings(ledger, run_id):  # the report is final: told once
        notify.send(config, RunState.COMPLETE, summary.model_dump(mode="json"), folder,
                    "the release window closed: the report is final")
    return folder


@flow(name="sample-storage")
def sample_storage(config: Config) -> list[str]:
    logger = get_run_logger()
    ledger = Ledger(config.ledger.url)
    clients = CloudClients.from_config(config)  # once per run; never a parameter (not serialisable)
    folders: list[str] = []
    for run in open_windows(ledger, config):
        sample = sample_bucket(clients.oss, ledger, run.run_id, "after")
        folder = close_or_update(config, ledger, run.run_id)
        if sample is None:
            logger.info("run %s: the bucket's statistics are not newer than its latest sample", run.run_id)
        else:
            logger.info("run %s: %d bytes at %s", run.run_id, sample.storage_bytes, sample.taken_at.isoformat())
        folders.append(str(folder))
    if not folders:
        logger.info("no open window for instance %s", config.target.instance_id)
    if config.freeze.hold_until == "window_end" and open_windows(ledger, config):
        logger.info("bucket %s stays frozen until the release window closes", config.target.bucket)
    else:
        logger.info(settle_freeze(config, ledger, clients))
    return folders
