"""The read-only steps as Prefect tasks: inventory, retention plan, regenerability gate.

Task runs are per step or per batch of repositories, never per tag. Each step leaves a
table artifact on the flow run, keyed per instance so that the dashboard keeps history
across monthly runs.
"""

from __future__ import annotations

import logging
import threading

import pandas as pd
from prefect import get_run_logger, task, unmapped
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext
from prefect.exceptions import MissingContextError

from acr_gc import rules
from acr_gc.cloud.clients import acr_client, oss_client
from acr_gc.config import Config
from acr_gc.reports.artifacts import artifact_key
from acr_gc.rules.plan_result import PlanResult
from acr_gc.seat import seat
from acr_gc.tasks import inventory as inv

REPOS_PER_BATCH = 100
NO_RETRY = dict(cache_policy=NO_CACHE, retries=0)  # the adapters retry each call themselves


def _logger():
    """The run's logger in a task or flow run; the module's logger when called directly."""
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger(__name__)


def _in_flow() -> bool:
    return FlowRunContext.get() is not None


def _table(kind: str, config: Config, frame: pd.DataFrame, description: str) -> None:
    if _in_flow():
        create_table_artifact(
            key=artifact_key(kind, config.target.instance_id),
            table=frame.astype(object).where(frame.notna(), None).to_dict(orient="records"),
            description=description,
        )


# ---- inventory --------------------------------------------------------------------


@task(name="list-repositories", **NO_RETRY)
def list_repositories(config: Config) -> pd.DataFrame:
    return inv.fetch_repositories(acr_client(config))


@task(name="list-tags", **NO_RETRY)
def list_tags(config: Config, repositories: pd.DataFrame, on_repository_done=None) -> pd.DataFrame:
    """The tags of one batch of repositories."""
    return inv.fetch_tags(acr_client(config), repositories, config.api.concurrency, on_repository_done)


@task(name="list-lifecycle-rules", **NO_RETRY)
def list_rules(config: Config) -> pd.DataFrame:
    return inv.fetch_rules(acr_client(config))


@task(name="list-charts", **NO_RETRY)
def list_charts(config: Config) -> pd.DataFrame:
    return inv.fetch_charts(acr_client(config))


class _Counter:
    """Repositories listed so far, counted from the tag-listing threads for the progress bar."""

    def __init__(self, bar):
        self.bar, self.done, self.lock = bar, 0, threading.Lock()

    def one_more(self) -> None:
        with self.lock:
            self.done += 1
            self.bar.update(self.done)


def take_inventory(config: Config) -> inv.Inventory:
    """Run the inventory tasks: rules and charts beside the repository listing, then the
    tags in batches of ``REPOS_PER_BATCH`` repositories, all batches submitted at once."""
    rules_future = list_rules.submit(config)
    charts_future = list_charts.submit(config)
    repositories = list_repositories(config)
    batches = inv.batches(repositories, REPOS_PER_BATCH)
    bar = seat().progress("inventory", total=len(repositories), unit="repositories listed")
    listed = _Counter(bar)
    try:
        tag_frames = ([f.result() for f in list_tags.map(unmapped(config), batches, unmapped(listed.one_more))]
                      if batches else [])
    finally:
        bar.close()
    tags = pd.concat(tag_frames, ignore_index=True) if tag_frames else inv.tags_frame([])
    inventory = inv.Inventory(repositories, tags, rules_future.result(), charts_future.result())
    per_namespace = (
        tags.groupby("namespace")
        .agg(repositories=("repo_id", "nunique"), tags=("tag", "size"), image_bytes=("image_size", "sum"))
        .reset_index()
    )
    _table("inventory", config, per_namespace, f"Inventory of {config.target.instance_id}")
    return inventory


# ---- plan and gate ----------------------------------------------------------------


def planned_readings(config: Config) -> tuple[rules.Reading, ...] | None:
    """The readings ``policy.semantics`` asks to plan under; None: all eight (conservative).

    ``learned``: the reading the instance's last verified GCs singled out (the ledger), else
    conservative."""
    semantics = config.policy.semantics
    if semantics == "conservative":
        return None
    if semantics == "learned":
        from acr_gc.ledger import Ledger
        from acr_gc.ledger.readings import learned_reading

        ledger = Ledger(config.ledger.url)
        try:
            name = learned_reading(ledger, config.target.instance_id)
        finally:
            ledger.dispose()
        return None if name is None else (rules.Reading.from_name(name),)
    return (rules.Reading(semantics.combination, semantics.count_regexp, semantics.regexp_match),)


@task(name="plan-retention", **NO_RETRY)
def plan_retention(config: Config, inventory: inv.Inventory) -> pd.DataFrame:
    """Which tags the lifecycle rules expire (DESIGN section 3), under the readings
    ``policy.semantics`` names: ``certain`` under all of them, ``possible`` under some."""
    readings = planned_readings(config)
    _logger().info("planning under %s", "every reading of the lifecycle rules (conservative)"
                          if readings is None else f"the reading {readings[0].name}")
    return rules.plan(inventory.tags, inventory.rules, readings=readings)


@task(name="verify-regenerable", **NO_RETRY)
def verify_regenerable(config: Config, inventory: inv.Inventory, planned: pd.DataFrame) -> PlanResult:
    """The gate (DESIGN section 4); reads replicas and build rules only where needed.

    Verdicts are first-that-holds (alias, replica, build-rule, manifest), so replicas are
    read for repositories that still have expired tags without an alias, and build rules
    for those that a replica does not fully cover.
    """
    manifest = (
        rules.load_manifest(config.policy.regeneration_manifest) if config.policy.regeneration_manifest else None
    )
    allow = config.policy.allow_unregenerable
    acr = acr_client(config)

    def unresolved_repos(frame: pd.DataFrame, settled: tuple[str, ...]) -> set[tuple[str, str]]:
        open_ = frame[frame["expired"] & ~frame["regenerable_by"].isin(settled)]
        return set(zip(open_["namespace"], open_["repo"]))

    verdicts = rules.regenerability(planned, None, None, None, allow)
    need_replicas = unresolved_repos(verdicts, ("alias",))
    replicas = inv.fetch_replica_tags(
        acr, need_replicas, lambda instance_id, region: acr_client(config, instance_id, region),
        readings=planned_readings(config),
    ) if need_replicas else None
    verdicts = rules.regenerability(planned, replicas, None, None, allow)
    need_builds = unresolved_repos(verdicts, ("alias", "replica"))
    repos = inventory.repositories
    build_rules = inv.fetch_build_rules(
        acr,
        repos[[key in need_builds for key in zip(repos["namespace"], repos["repo"])]],
        config.api.concurrency,
    ) if need_builds else None
    verdicts = rules.regenerability(planned, replicas, build_rules, manifest, allow)
    certain_only = planned.assign(expired=planned["certainty"] == rules.CERTAIN)
    result = PlanResult(
        verdicts=verdicts,
        expected=rules.expected_bytes(certain_only),
        expected_max=rules.expected_bytes(planned),
        gate=rules.gate(verdicts, config.policy.max_delete_share, config.policy.allow_emptied),
        charts=len(inventory.charts),
        rule_table=rules.rule_table(inventory.rules),
    )
    _table("rules", config, result.rule_table, "Lifecycle rules as planned (dry-run rules delete nothing)")
    for rule in result.rule_table[result.rule_table["runs_by_itself"]].itertuples():
        _logger().warning(
            "lifecycle rule %s (%s) runs by itself (Auto, next run %s): it deletes tags outside acr-gc's gate; "
            "acr-gc can only verify afterwards", rule.rule_id, rule.scope, rule.next_time or "unknown")
    _table("plan", config, result.per_namespace(), f"Retention plan of {config.target.instance_id}")
    counts = verdicts[verdicts["expired"]].groupby("regenerable_by").size().rename("tags").reset_index()
    _table("gate", config, counts, "How each expired tag can be regenerated ('none' blocks unless allowed)")
    return result


@task(name="bucket-size", **NO_RETRY)
def bucket_size(config: Config) -> int:
    return oss_client(config).bucket_stat().storage_bytes


def plan_instance_steps(config: Config) -> PlanResult:
    """Inventory → plan → gate, as tasks of the calling flow."""
    size_future = bucket_size.submit(config)
    inventory = take_inventory(config)
    planned = plan_retention(config, inventory)
    result = verify_regenerable(config, inventory, planned)
    result.bucket_bytes = size_future.result()
    if config.target.registry_endpoint:
        apply_forecast(config, inventory, planned, result)
    return result


def apply_forecast(config: Config, inventory: inv.Inventory, planned: pd.DataFrame, result: PlanResult) -> None:
    """Replace the image-size estimate by the exact forecast (DESIGN section 3): manifests read
    through the registry API (cached by digest), blob objects listed in the bucket."""
    from acr_gc.rules.forecast import forecast_range, unreferenced_before
    from acr_gc.tasks.forecast import blob_objects, read_manifests

    objects_future = blob_objects.submit(config)
    graph = read_manifests(config, inventory.tags)
    certain = (planned["certainty"] == rules.CERTAIN).to_numpy(dtype=bool)
    possible = (planned["certainty"] == rules.POSSIBLE).to_numpy(dtype=bool)
    low, high = forecast_range(planned, graph.manifests, certain, possible)
    result.expected, result.expected_max = low.expected, high.expected
    result.unreadable = high.unreadable
    result.bytes_unreferenced_before, _ = unreferenced_before(objects_future.result(), planned, graph.manifests)
    _table("plan", config, result.per_namespace(), f"Retention plan of {config.target.instance_id} (exact forecast)")
