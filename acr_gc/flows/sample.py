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

import json
from pathlib import Path

from prefect import flow, get_run_logger
from sqlalchemy import select

from acr_gc import notify
from acr_gc.cloud.clients import CloudClients
from acr_gc.config import Config
from acr_gc.ledger import Ledger, Run
from acr_gc.tasks.freeze import settle_freeze
from acr_gc.tasks.sampling import sample_bucket


def open_windows(ledger: Ledger, config: Config) -> list[Run]:
    """Runs of this instance whose GC is done and whose report is not final yet."""
    with ledger.session() as session:
        return list(
            session.scalars(
                select(Run)
                .where(Run.instance_id == config.target.instance_id, Run.state == "GC_DONE")
                .order_by(Run.started_at)
            )
        )


def close_or_update(config: Config, ledger: Ledger, run_id: str) -> Path:
    """Re-render the run's report from the ledger; a closed window adds its savings row."""
    from acr_gc.reports.build import build_report, finalize_savings

    folder = build_report(ledger, run_id)
    with ledger.session() as session:
        complete = session.get(Run, run_id).state == "COMPLETE"
    if complete and finalize_savings(ledger, run_id):  # the report is final: told once
        summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
        notify.send(config, "COMPLETE", summary, folder, "the release window closed: the report is final")
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
