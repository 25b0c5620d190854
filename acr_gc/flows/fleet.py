"""``reclaim_fleet``: many instances, one child flow run each, concurrently (DESIGN 11).

Each instance runs ``reclaim_storage`` as its own child flow run, so the dashboard shows
one run per instance; one instance failing (blocked gate, API down) never stops the
others. Runs of one region share that region's API quota through a Prefect global
concurrency limit (``acr-gc-region-<region>``, created on first use with
``slots_per_region`` slots: that many instances of one region run at once), so a fleet cannot exceed what the region allows even when
its child runs are spread over several workers.

The list of configs is refused as a parameter (before the fleet run starts, before any
child run) when two configs name one instance or one bucket: two runs of one instance
would collide, and two instances sharing a bucket would thaw each other's freeze.
"""

from typing import Annotated

from pydantic import AfterValidator, BaseModel
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.concurrency.sync import concurrency
from prefect.task_runners import ThreadPoolTaskRunner

from acr_gc.config import Config
from acr_gc.flows.reclaim import reclaim_storage
from acr_gc.reports.files import new_run_id
from acr_gc.ledger.states import RunState


class InstanceOutcome(BaseModel):
    instance_id: str
    region: str
    run_id: str
    state: RunState  # the summary.json state, or FAILED when the run left no summary
    flow_state: str
    message: str | None = None
    tags_deleted: int | None = None
    reclaimed_bytes: int | None = None


def _one_run_per_instance_and_bucket(configs: list[Config]) -> list[Config]:
    """The fleet's parameter check: each instance once, each bucket once."""
    why = {"instance": "two runs of one instance would collide",
           "bucket": "their runs would freeze and thaw one bucket under each other"}
    for what in ("instance", "bucket"):
        seen: dict[str, int] = {}
        for index, config in enumerate(configs):
            name = config.target.instance_id if what == "instance" else config.target.bucket
            first = seen.setdefault(name, index)
            if first != index:
                raise ValueError(
                    f"configs[{first}] (instance {configs[first].target.instance_id}) and configs[{index}] "
                    f"(instance {config.target.instance_id}) name the same {what} {name}: a fleet may list each "
                    f"{what} once ({why[what]})")
    return configs


FleetConfigs = Annotated[list[Config], AfterValidator(_one_run_per_instance_and_bucket)]


def region_limit(region: str) -> str:
    return f"acr-gc-region-{region}"


@task(name="reclaim-instance", cache_policy=NO_CACHE)
def reclaim_instance(config: Config) -> InstanceOutcome:
    run_id = new_run_id()
    target = config.target
    try:
        with concurrency(region_limit(target.region), occupy=1, strict=True):
            state = reclaim_storage(config, run_id=run_id, return_state=True)
    except Exception as exc:  # a crashed child must not take the fleet down
        return InstanceOutcome(instance_id=target.instance_id, region=target.region, run_id=run_id,
                               state=RunState.FAILED, flow_state="CRASHED", message=str(exc).splitlines()[0][:300])
    # A flow's returned state keeps its data as a result record (Prefect 3), not the dict:
    # read it back; a crashed or cancelled child may hold an exception instead.
    try:
        data = state.result(raise_on_failure=False)
    except Exception:
        data = None
    data = data if isinstance(data, dict) else {}
    return InstanceOutcome(
        instance_id=target.instance_id,
        region=target.region,
        run_id=run_id,
        state=data.get("state", RunState.FAILED),
        flow_state=state.type.value,
        message=state.message,
        tags_deleted=(data.get("gc") or {}).get("tags_deleted"),
        reclaimed_bytes=(data.get("storage") or {}).get("reclaimed_bytes"),
    )


@flow(name="reclaim-fleet", task_runner=ThreadPoolTaskRunner(max_workers=16))
def reclaim_fleet(configs: FleetConfigs, slots_per_region: int = 4) -> list[InstanceOutcome]:
    logger = get_run_logger()
    with get_client(sync_client=True) as client:
        for region in sorted({c.target.region for c in configs}):
            client.upsert_global_concurrency_limit_by_name(region_limit(region), slots_per_region)
    futures = reclaim_instance.map(configs)
    outcomes = [f.result() for f in futures]
    for outcome in outcomes:
        logger.info("%s: %s (%s)", outcome.instance_id, outcome.state, outcome.message or "ok")
    return outcomes
