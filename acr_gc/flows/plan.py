"""``plan_instance``: the read-only part of the pipeline on its own (``acr-gc plan``).

Inventory, retention plan, the regenerability gate and the bucket's release window (a
bucket whose storage would never drop blocks, as it blocks a run); writes ``plan.csv``
and a ``summary.json`` with the plan block. Changes nothing in the cloud. The cloud
adapters are built once, at the flow's start, and handed to the steps.
"""

from __future__ import annotations

from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import ThreadPoolTaskRunner

from acr_gc.cloud.clients import CloudClients
from acr_gc.cloud.oss import OssClient
from acr_gc.config import Config
from acr_gc.reports import files
from acr_gc.reports.summary import CostSummary, PlanSummary, Summary
from acr_gc.rules.plan_result import PlanResult
from acr_gc.ledger.states import RunState
from acr_gc.rules.window import Window
from acr_gc.tasks.checks import release_check
from acr_gc.tasks.planning import plan_instance_steps


@dataclass
class PlanOutcome:
    run_id: str
    folder: Path
    result: PlanResult
    window: Window | None = None  # the bucket's release window
    bucket_blocked: str | None = None  # the never-released message, when it blocks

    @property
    def passed(self) -> bool:
        return self.result.gate.passed and self.bucket_blocked is None


@task(name="check-bucket-release", cache_policy=NO_CACHE)
def check_bucket_release(config: Config, oss: OssClient) -> tuple[Window, str | None]:
    return release_check(config, oss)


@flow(name="plan-instance", task_runner=ThreadPoolTaskRunner(max_workers=8), log_prints=False)
def plan_instance(config: Config, run_id: str | None = None) -> PlanOutcome:
    run_id = run_id or files.new_run_id()
    with closing(CloudClients.from_config(config)) as clients:  # once per run; never a parameter
        release = check_bucket_release.submit(config, clients.oss)  # beside the plan: it needs only the bucket
        result = plan_instance_steps(config, clients)
        window, bucket_blocked = release.result()
    folder = files.run_dir(config.report.out_dir, config.target.instance_id, run_id)
    files.write_plan_csv(result.verdicts, folder)
    files.write_unreadable_manifests(result.verdicts, result.unreadable, folder)
    files.write_summary(
        Summary(
            run_id=run_id,
            instance_id=config.target.instance_id,
            bucket=config.target.bucket,
            state=RunState.PLANNED if result.gate.passed and bucket_blocked is None else RunState.BLOCKED,
            plan=PlanSummary(**result.summary),
            cost=CostSummary(currency=config.report.currency, price_per_gb_month=config.report.price_per_gb_month),
        ),
        folder,
    )
    return PlanOutcome(run_id=run_id, folder=folder, result=result, window=window,
                       bucket_blocked=bucket_blocked)
