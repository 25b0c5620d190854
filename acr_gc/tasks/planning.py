"""The read-only steps as Prefect tasks: inventory, retention plan, regenerability gate.

Task runs are per step or per batch of repositories, never per tag. Each step leaves a
table artifact on the flow run, keyed per instance so that the dashboard keeps history
across monthly runs. Steps are handed the run's adapters (:class:`CloudClients`, built
once per flow run), never build their own; client objects do not hash, hence NO_CACHE.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pandas as pd
from prefect import get_run_logger, task, unmapped
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext
from prefect.exceptions import MissingContextError
from prefect.futures import PrefectFuture, as_completed
from prefect.utilities.annotations import quote

from acr_gc import rules
from acr_gc.cloud.acr import AcrClient
from acr_gc.cloud.clients import CloudClients
from acr_gc.cloud.oss import OssClient
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
def list_repositories(acr: AcrClient, concurrency: int = 1) -> pd.DataFrame:
    return inv.fetch_repositories(acr, concurrency)


@task(name="list-tags", **NO_RETRY)
def list_tags(acr: AcrClient, repositories: pd.DataFrame, concurrency: int, on_repository_done=None) -> pd.DataFrame:
    """The tags of one batch of repositories, ``concurrency`` repositories at a time."""
    return inv.fetch_tags(acr, repositories, concurrency, on_repository_done)


@task(name="list-lifecycle-rules", **NO_RETRY)
def list_rules(acr: AcrClient) -> pd.DataFrame:
    return inv.fetch_rules(acr)


@task(name="list-charts", **NO_RETRY)
def list_charts(acr: AcrClient) -> pd.DataFrame:
    return inv.fetch_charts(acr)


class _Counter:
    """Repositories listed so far, counted from the tag-listing threads for the progress bar."""

    def __init__(self, bar):
        self.bar, self.done, self.lock = bar, 0, threading.Lock()

    def one_more(self) -> None:
        with self.lock:
            self.done += 1
            self.bar.update(self.done)


@dataclass
class PendingInventory:
    """The inventory's task runs, submitted and still running: the gate's reads can start on
    each tag batch as it completes (:func:`read_gate_inputs`) while the others are listed."""

    repositories: pd.DataFrame
    rules: PrefectFuture
    charts: PrefectFuture
    tag_batches: list[PrefectFuture]
    bar: object  # the seat's inventory progress bar (repositories listed), closed on collect


def submit_inventory(config: Config, clients: CloudClients) -> PendingInventory:
    """Submit the inventory tasks: rules and charts beside the repository listing, then the
    tags in batches of ``REPOS_PER_BATCH`` repositories, all batches submitted at once."""
    acr = clients.acr
    rules_future = list_rules.submit(acr)
    charts_future = list_charts.submit(acr)
    repositories = list_repositories(acr, config.api.concurrency)
    batches = inv.batches(repositories, REPOS_PER_BATCH)
    bar = seat().progress("inventory", total=len(repositories), unit="repositories listed")
    listed = _Counter(bar)
    tag_futures = list(list_tags.map(unmapped(acr), batches, unmapped(config.api.concurrency),
                                     unmapped(listed.one_more))) if batches else []
    return PendingInventory(repositories, rules_future, charts_future, tag_futures, bar)


def collect_inventory(config: Config, pending: PendingInventory) -> inv.Inventory:
    """Wait for the inventory's task runs; leave its table artifact."""
    try:
        tag_frames = [f.result() for f in pending.tag_batches]
    finally:
        pending.bar.close()
    tags = pd.concat(tag_frames, ignore_index=True) if tag_frames else inv.tags_frame([])
    inventory = inv.Inventory(pending.repositories, tags, pending.rules.result(), pending.charts.result())
    per_namespace = (
        tags.groupby("namespace")
        .agg(repositories=("repo_id", "nunique"), tags=("tag", "size"), image_bytes=("image_size", "sum"))
        .reset_index()
    )
    _table("inventory", config, per_namespace, f"Inventory of {config.target.instance_id}")
    return inventory


def take_inventory(config: Config, clients: CloudClients) -> inv.Inventory:
    """Run the inventory tasks (:func:`submit_inventory`) and wait for them."""
    return collect_inventory(config, submit_inventory(config, clients))


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


def _unresolved_repos(frame: pd.DataFrame, settled: tuple[str, ...]) -> set[tuple[str, str]]:
    """Repositories with expired tags that no verdict in ``settled`` covers."""
    open_ = frame[frame["expired"] & ~frame["regenerable_by"].isin(settled)]
    return set(zip(open_["namespace"], open_["repo"]))


@dataclass
class GateReads:
    """The gate's reads (replica tags, build rules) and the repositories they were made for."""

    need_replicas: set[tuple[str, str]]
    replicas: pd.DataFrame | None
    need_builds: set[tuple[str, str]]
    build_rules: pd.DataFrame | None


@task(name="read-gate-inputs", **NO_RETRY)
def read_gate_inputs(config: Config, clients: CloudClients, rules_future: PrefectFuture,
                     tag_batches: list[PrefectFuture]) -> GateReads:
    """The gate's reads, made while the inventory still lists tags (issue 16): the two share
    the API quota as one stream instead of running one after the other.

    As each tag batch completes, its repositories are planned on their own (retention is
    per repository: the plan of a subset is that subset's rows of the whole plan) and its
    replica tags, then build rules, are read — for exactly the repositories
    :func:`verify_regenerable` would read them for, each listing once (a shared
    :class:`~acr_gc.tasks.inventory.ReplicaReader`), so the calls are the same ones."""
    if isinstance(rules_future, quote):  # passed quoted, so that Prefect does not wait for it
        rules_future = rules_future.unquote()
    if isinstance(tag_batches, quote):
        tag_batches = tag_batches.unquote()
    allow = config.policy.allow_unregenerable
    readings = planned_readings(config)
    acr = clients.acr
    replica_reader = inv.ReplicaReader(acr, clients.acr_for, readings=readings)
    rule_frame = rules_future.result()

    def one_batch(tags: pd.DataFrame) -> tuple[set, list[tuple], set, pd.DataFrame | None]:
        planned = rules.plan(tags, rule_frame, readings=readings)
        need_replicas = _unresolved_repos(rules.regenerability(planned, None, None, None, allow), ("alias",))
        replica_rows = replica_reader.read(need_replicas) if need_replicas else []
        replicas = inv.ReplicaReader.frame([replica_rows]) if need_replicas else None
        need_builds = _unresolved_repos(rules.regenerability(planned, replicas, None, None, allow),
                                        ("alias", "replica"))
        repos = tags[["namespace", "repo", "repo_id"]].drop_duplicates()
        build_rules = inv.fetch_build_rules(
            acr, repos[[key in need_builds for key in zip(repos["namespace"], repos["repo"])]],
            config.api.concurrency,
        ) if need_builds else None
        return need_replicas, replica_rows, need_builds, build_rules

    position = {id(future): index for index, future in enumerate(tag_batches)}
    with ThreadPoolExecutor(max_workers=max(1, len(tag_batches))) as pool:
        pending = {position[id(done)]: pool.submit(one_batch, done.result()) for done in as_completed(tag_batches)}
        parts = [pending[index].result() for index in sorted(pending)]  # in repository order, as one read
    need_replicas = set().union(*(part[0] for part in parts))
    need_builds = set().union(*(part[2] for part in parts))
    builds = [part[3] for part in parts if part[3] is not None]
    return GateReads(
        need_replicas=need_replicas,
        replicas=inv.ReplicaReader.frame(part[1] for part in parts) if need_replicas else None,
        need_builds=need_builds,
        build_rules=pd.concat(builds, ignore_index=True) if need_builds else None,
    )


@task(name="verify-regenerable", **NO_RETRY)
def verify_regenerable(config: Config, clients: CloudClients, inventory: inv.Inventory, planned: pd.DataFrame,
                       prefetched: PrefectFuture | None = None) -> PlanResult:
    """The gate (DESIGN section 4); reads replicas and build rules only where needed.

    Verdicts are first-that-holds (alias, replica, build-rule, manifest), so replicas are
    read for repositories that still have expired tags without an alias, and build rules
    for those that a replica does not fully cover. ``prefetched`` (a :func:`read_gate_inputs`
    run, passed quoted): its reads are used where they were made for the same repositories.
    """
    if isinstance(prefetched, quote):
        prefetched = prefetched.unquote()
    reads = prefetched.result() if prefetched is not None else None
    manifest = (
        rules.load_manifest(config.policy.regeneration_manifest) if config.policy.regeneration_manifest else None
    )
    allow = config.policy.allow_unregenerable
    acr = clients.acr

    verdicts = rules.regenerability(planned, None, None, None, allow)
    need_replicas = _unresolved_repos(verdicts, ("alias",))
    if reads is not None and reads.need_replicas == need_replicas:
        replicas = reads.replicas
    else:
        replicas = inv.fetch_replica_tags(
            acr, need_replicas, clients.acr_for, readings=planned_readings(config),
        ) if need_replicas else None
    verdicts = rules.regenerability(planned, replicas, None, None, allow)
    need_builds = _unresolved_repos(verdicts, ("alias", "replica"))
    repos = inventory.repositories
    if reads is not None and reads.need_builds == need_builds:
        build_rules = reads.build_rules
    else:
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
def bucket_size(oss: OssClient) -> int:
    return oss.bucket_stat().storage_bytes


def plan_instance_steps(config: Config, clients: CloudClients) -> PlanResult:
    """Inventory → plan → gate, as tasks of the calling flow, on the run's adapters."""
    size_future = bucket_size.submit(clients.oss)
    pending = submit_inventory(config, clients)
    reads = read_gate_inputs.submit(config, clients, quote(pending.rules), quote(pending.tag_batches))
    inventory = collect_inventory(config, pending)
    planned = plan_retention(config, inventory)
    result = verify_regenerable(config, clients, inventory, planned, quote(reads))
    result.bucket_bytes = size_future.result()
    if config.target.registry_endpoint:
        apply_forecast(config, clients, inventory, planned, result)
    return result


def apply_forecast(config: Config, clients: CloudClients, inventory: inv.Inventory, planned: pd.DataFrame,
                   result: PlanResult) -> None:
    """Replace the image-size estimate by the exact forecast (DESIGN section 3): manifests read
    through the registry API (cached by digest), blob objects listed in the bucket."""
    from acr_gc.rules.forecast import forecast_range, unreferenced_before
    from acr_gc.tasks.forecast import blob_objects, read_manifests

    objects_future = blob_objects.submit(clients.oss)
    graph = read_manifests(clients.registry, config.ledger.url, inventory.tags)
    certain = (planned["certainty"] == rules.CERTAIN).to_numpy(dtype=bool)
    possible = (planned["certainty"] == rules.POSSIBLE).to_numpy(dtype=bool)
    low, high = forecast_range(planned, graph.manifests, certain, possible)
    result.expected, result.expected_max = low.expected, high.expected
    result.unreadable = high.unreadable
    result.bytes_unreferenced_before, _ = unreferenced_before(objects_future.result(), planned, graph.manifests)
    _table("plan", config, result.per_namespace(), f"Retention plan of {config.target.instance_id} (exact forecast)")
