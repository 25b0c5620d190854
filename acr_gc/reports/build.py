"""Building a run's report from the ledger (DESIGN section 8), and the savings.csv roll-up.

Typical use, when a run's samples change (end of the monthly flow, each sampler pass,
``acr-gc report``)::

    close_window(ledger, run_id)              # acr_gc.ledger.runs: GC_DONE -> COMPLETE once the window closed
    folder = build_report(ledger, run_id)     # files + Prefect artifacts inside a run
    finalize_savings(ledger, run_id)          # one savings.csv row once the window closed

``build_report`` reads the Run row and its samples, computes the figures with
:func:`acr_gc.rules.figures.storage_figures`, and writes ``summary.json`` (plan, gc and
checks blocks from the ledger's JSON columns; storage and cost blocks from the figures),
``samples.csv``, ``storage.png``, ``report.md`` and ``report.html``. It only reads and
renders: the run's state is the ledger's, moved by :mod:`acr_gc.ledger.runs` alone.

Exactly once in savings.csv. ``finalize_savings`` hands the row to
:func:`acr_gc.ledger.runs.record_savings_once`, which reads the run (``SELECT … FOR
UPDATE`` where the database has it), returns at once when ``Run.savings_recorded`` is
set, else has the row appended and sets the flag in the same transaction, committed after
the append. The crash window — the row appended, the process killed before the commit —
is closed by :func:`acr_gc.reports.render.append_savings_row`, which does not add a row
whose run_id is already in the file (under a file lock, so two samplers racing on SQLite,
which has no row locks, cannot both add it). What remains: if someone deletes or moves
savings.csv between such a crash and the next pass, the row is written again into the
new file, once.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pandas as pd

from acr_gc.ledger import Ledger, Run
from acr_gc.ledger.approvals import approval_of
from acr_gc.ledger.plans import load_rule_table
from acr_gc.ledger.runs import get_run, record_savings_once
from acr_gc.ledger.samples import samples_frame
from acr_gc.reports import files
from acr_gc.reports.render import NAMESPACE_COLUMNS, ReportInput, append_savings_row, write_report
from acr_gc.rules import running_by_themselves
from acr_gc.reports.summary import ChecksSummary, CostSummary, GcSummary, PlanSummary, StorageSummary, Summary
from acr_gc.rules.figures import (
    STALE_PHASE,
    StorageFigures,
    savings_row,
    storage_figures,
    summary_cost_block,
    summary_storage_block,
)
from acr_gc.ledger.states import FINISHED


class ReportError(ValueError):
    """The run cannot be reported (unknown id, still running); one line, for exit 2."""


def _reportable_run(ledger: Ledger, run_id: str) -> Run:
    run = get_run(ledger, run_id)
    if run is None:
        raise ReportError(f"no run {run_id!r} in the ledger")
    if run.state not in FINISHED:
        raise ReportError(f"run is {run.state}: it has not finished (report it once it has, or pick another with --run)")
    return run


def _figures(run: Run, samples: pd.DataFrame, now: datetime | None) -> StorageFigures:
    return storage_figures(
        samples,
        gc_started_at=run.gc_started_at,
        gc_finished_at=run.gc_finished_at,
        window_end=run.window_end,
        now=now,
        price_per_gb_month=run.price_per_gb_month,
        currency=run.currency,
        plan=json.loads(run.plan_json) if run.plan_json else None,
        charts=run.charts or 0,
    )


def _namespaces(run: Run) -> pd.DataFrame:
    records = json.loads(run.namespaces_json) if run.namespaces_json else []
    return pd.DataFrame(records).reindex(columns=NAMESPACE_COLUMNS)


def summary_of(run: Run, figures: StorageFigures) -> Summary:
    """summary.json for the run: ledger blocks as recorded, storage and cost from figures."""
    return Summary(
        run_id=run.run_id,
        instance_id=run.instance_id,
        bucket=run.bucket,
        state=run.state,
        plan=PlanSummary.model_validate_json(run.plan_json) if run.plan_json else None,
        gc=GcSummary.model_validate_json(run.gc_json) if run.gc_json else GcSummary(),
        checks=ChecksSummary.model_validate_json(run.checks_json) if run.checks_json else ChecksSummary(),
        storage=StorageSummary(**summary_storage_block(figures)),
        cost=CostSummary(**summary_cost_block(figures)),
    )


def _approval(ledger: Ledger, run_id: str) -> dict | None:
    """The person's answer to the run's plan, when approval was required."""
    row = approval_of(ledger, run_id)
    if row is None:
        return None
    return {"approved": row.approved, "answered_by": row.answered_by, "reason": row.reason, "via": row.via,
            "answered_at": row.answered_at}


def build_report(ledger: Ledger, run_id: str, now: datetime | None = None, *, publish: bool | None = None) -> Path:
    """Write every report file of the run from the ledger; returns the run folder."""
    return render_report(ledger, run_id, now, publish=publish)[0]


def render_report(ledger: Ledger, run_id: str, now: datetime | None = None, *,
                  publish: bool | None = None) -> tuple[Path, Summary]:
    """Write every report file of the run from the ledger; returns the run folder and the
    summary.json written there (so a caller need not read the file back).

    ``now`` is the cloud's clock (None: the latest sample's time, see
    :mod:`acr_gc.rules.figures`). ``publish``: create the Prefect artifacts (None: when
    called inside a flow or task run). Reads only: the run's state is shown as the ledger
    holds it (``acr_gc.ledger.runs.close_window`` first, to have a closed window COMPLETE).
    """
    run = _reportable_run(ledger, run_id)
    samples = samples_frame(ledger, run_id)
    figures = _figures(run, samples, now)
    folder = files.run_dir(run.out_dir, run.instance_id, run.run_id)
    report = ReportInput(
        run_id=run.run_id,
        instance_id=run.instance_id,
        bucket=run.bucket,
        region=run.region,
        state=run.state,
        message=run.message,
        figures=figures,
        samples=samples[samples["phase"] != STALE_PHASE] if len(samples) else samples,  # the series only
        plan=json.loads(run.plan_json) if run.plan_json else None,
        gc=json.loads(run.gc_json) if run.gc_json else {},
        checks=json.loads(run.checks_json) if run.checks_json else {},
        namespaces=_namespaces(run),
        approval=_approval(ledger, run_id),
        rules_by_themselves=_rules_by_themselves(ledger, run),
    )
    written = write_report(folder, report)
    summary = summary_of(run, figures)
    files.write_summary(summary, folder)
    from acr_gc.reports.artifacts import in_prefect_run, publish_artifacts

    if publish or (publish is None and in_prefect_run()):
        publish_artifacts(report, folder, written.chart_png.read_bytes())
    return folder, summary


def _rules_by_themselves(ledger: Ledger, run: Run) -> list[dict]:
    """The run's lifecycle rules that delete tags by themselves before its GC started."""
    table = load_rule_table(ledger, run.run_id)
    if table is None or table.empty:
        return []
    return running_by_themselves(table, run.gc_started_at)[["rule_id", "scope", "next_time"]].to_dict("records")


def finalize_savings(ledger: Ledger, run_id: str, now: datetime | None = None) -> bool:
    """Add the run's savings.csv row once its window is complete; True when this call
    recorded it. Safe to call on every sampler pass (see the module docstring)."""

    def append(run: Run, samples: pd.DataFrame) -> bool:
        figures = _figures(run, samples, now)
        if not figures.window_complete or figures.reclaimed_bytes is None:
            return False
        append_savings_row(run.out_dir, savings_row(figures, instance_id=run.instance_id, run_id=run.run_id))
        return True

    try:
        return record_savings_once(ledger, run_id, append)
    except LookupError as exc:
        raise ReportError(str(exc)) from None
