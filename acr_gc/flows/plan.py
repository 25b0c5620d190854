"""``plan_instance``: the read-only part of the pipeline on its own (``acr-gc plan``).

Inventory, retention plan and the regenerability gate; writes ``plan.csv`` and a
``summary.json`` with the plan block. Changes nothing in the cloud.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from prefect import flow
from prefect.task_runners import ThreadPoolTaskRunner

from acr_gc.config import Config
from acr_gc.reports import files
from acr_gc.reports.summary import CostSummary, PlanSummary, Summary
from acr_gc.rules.plan_result import PlanResult
from acr_gc.tasks.planning import plan_instance_steps


@dataclass
class PlanOutcome:
    run_id: str
    folder: Path
    result: PlanResult


@flow(name="plan-instance", task_runner=ThreadPoolTaskRunner(max_workers=8), log_prints=False)
def plan_instance(config: Config, run_id: str | None = None) -> PlanOutcome:
    run_id = run_id or files.new_run_id()
    result = plan_instance_steps(config)
    folder = files.run_dir(config.report.out_dir, config.target.instance_id, run_id)
    files.write_plan_csv(result.verdicts, folder)
    files.write_summary(
        Summary(
            run_id=run_id,
            instance_id=config.target.instance_id,
            bucket=config.target.bucket,
            state="PLANNED" if result.gate.passed else "BLOCKED",
            plan=PlanSummary(**result.summary),
            cost=CostSummary(currency=config.report.currency, price_per_gb_month=config.report.price_per_gb_month),
        ),
        folder,
    )
    return PlanOutcome(run_id=run_id, folder=folder, result=result)
