"""Inventory of an instance into pandas DataFrames (the read-only first step).

What is read, and the frames it becomes (the planner's input contracts, see
``acr_gc.rules``):

- ``repositories``: namespace, repo, repo_id — image repositories only (charts are
  listed by other actions and are never planned);
- ``tags``: namespace, repo, repo_id, tag, digest, image_size, updated (UTC);
- ``rules``: rule_id, scope, namespace, repo, retention_tag_count, tag_regexp,
  enable_delete_tag, dry_run, policies, auto, schedule_time, next_time,
  enable_delete_untagged_manifest;
- ``charts``: namespace, repo — counted for the report's caveats only.

Tags are fetched per batch of repositories: one Prefect task run per batch (never per
tag or per repository), and inside a batch a thread pool as wide as ``api.concurrency``.
Every call goes through the adapters' shared rate limiter, so the pool's width never
exceeds the quota, it only hides latency.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pandas as pd

from acr_gc.cloud.acr import AcrClient, Page
from acr_gc.rules import retention
from acr_gc.rules.regenerability import BUILD_RULE_COLUMNS as _BUILD_RULE_COLUMNS
from acr_gc.rules.regenerability import REPLICA_COLUMNS as _REPLICA_COLUMNS
from acr_gc.rules.retention import OPTIONAL_RULE_COLUMNS as _OPTIONAL_RULE_COLUMNS
from acr_gc.rules.retention import RULE_COLUMNS as _RULE_COLUMNS
from acr_gc.rules.retention import TAG_COLUMNS as _TAG_COLUMNS

REPOSITORY_COLUMNS = ["namespace", "repo", "repo_id"]
# The planner's input contracts (acr_gc.rules) are the frames' shapes.
TAG_COLUMNS = list(_TAG_COLUMNS)
RULE_COLUMNS = [*_RULE_COLUMNS, *_OPTIONAL_RULE_COLUMNS]
CHART_COLUMNS = ["namespace", "repo"]


@dataclass
class Inventory:
    repositories: pd.DataFrame
    tags: pd.DataFrame
    rules: pd.DataFrame
    charts: pd.DataFrame


class IncompleteListing(RuntimeError):
    """A paged listing that never added up: the run fails before any change, since a tag
    the inventory missed would be "retained" in the plan and yet deleted by the cloud."""


LISTING_ATTEMPTS = 3


def complete_listing(pages: Callable[[], Iterable[Page]], key: Callable[[Any], Hashable], what: str) -> list:
    """Every item of a paged listing, de-duplicated by ``key``, checked against TotalCount.

    Paging by offset over a set that changes (a push, an automatic rule run) can repeat
    an item or skip one; a repeat is dropped, and a count that does not match TotalCount
    (or a TotalCount that changed between pages) reads the whole listing again, up to
    ``LISTING_ATTEMPTS`` times, then raises :class:`IncompleteListing`."""
    found = total = 0
    for _attempt in range(LISTING_ATTEMPTS):
        items: dict[Hashable, Any] = {}
        totals: set[int] = set()
        for page in pages():
            totals.add(page.total_count)
            for item in page.items:
                items.setdefault(key(item), item)
        found, total = len(items), (max(totals) if totals else 0)
        if len(totals) <= 1 and found == total:
            return list(items.values())
    raise IncompleteListing(
        f"{what}: {found} distinct item(s) listed but TotalCount says {total}, {LISTING_ATTEMPTS} times: "
        "the listing is incomplete, so nothing was changed; run again once the registry is quiet"
    )


def fetch_repositories(acr: AcrClient, concurrency: int = 1) -> pd.DataFrame:
    """Every image repository. The tag listing waits for this one, so its pages after the
    first are requested ``concurrency`` at a time (6 pages for 600 repositories: two round
    trips instead of six before the quota is in use)."""
    listed = complete_listing(lambda: acr.iter_repository_pages(parallel=concurrency), lambda r: r.repo_id,
                              "ListRepository")
    rows = [(r.namespace, r.name, r.repo_id) for r in listed]
    return pd.DataFrame(rows, columns=REPOSITORY_COLUMNS)


def fetch_tags(
    acr: AcrClient,
    repositories: pd.DataFrame,
    concurrency: int,
    on_repository_done: Callable[[], None] | None = None,
) -> pd.DataFrame:
    """Every tag of ``repositories``, fetched ``concurrency`` repositories at a time."""

    def one(repo: tuple[str, str, str]) -> list[tuple]:
        namespace, name, repo_id = repo
        listed = complete_listing(
            lambda: acr.iter_repo_tag_pages(repo_id, resource=f"{namespace}/{name}"),
            lambda t: t.tag, f"ListRepoTag {namespace}/{name}",
        )
        found = [(namespace, name, repo_id, t.tag, t.digest, t.image_size, t.updated) for t in listed]
        if on_repository_done is not None:
            on_repository_done()
        return found

    repos = list(repositories[REPOSITORY_COLUMNS].itertuples(index=False, name=None))
    with ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(repos) or 1))) as pool:
        rows = [row for found in pool.map(one, repos) for row in found]
    return tags_frame(rows)


def tags_frame(rows: list[tuple]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=TAG_COLUMNS)
    frame["image_size"] = frame["image_size"].astype("int64")
    frame["updated"] = pd.to_datetime(frame["updated"], utc=True)
    return frame


def fetch_rules(acr: AcrClient) -> pd.DataFrame:
    rows = [
        (
            r.rule_id,
            r.scope,
            r.namespace,
            r.repo,
            r.retention_tag_count,
            r.tag_regexp,
            r.enable_delete_tag,
            r.dry_run,
            list(r.policies) or None,
            r.auto,
            r.schedule_time,
            r.next_time,
            r.enable_delete_untagged_manifest,
        )
        for r in complete_listing(acr.iter_lifecycle_rule_pages, lambda r: r.rule_id, "ListArtifactLifecycleRule")
    ]
    frame = pd.DataFrame(rows, columns=RULE_COLUMNS)
    frame["retention_tag_count"] = frame["retention_tag_count"].astype("Int64")
    frame["enable_delete_tag"] = frame["enable_delete_tag"].astype(bool)
    frame["dry_run"] = frame["dry_run"].astype(bool)
    return frame


def fetch_charts(acr: AcrClient) -> pd.DataFrame:
    rows = [(c.namespace, c.name) for c in acr.list_chart_repositories()]
    return pd.DataFrame(rows, columns=CHART_COLUMNS)


def batches(frame: pd.DataFrame, size: int) -> list[pd.DataFrame]:
    """Split ``frame`` into consecutive slices of at most ``size`` rows."""
    return [frame.iloc[start : start + size] for start in range(0, len(frame), size)]


# ---- the gate's inputs: read only for the repositories that need them ---------------

REPLICA_COLUMNS = list(_REPLICA_COLUMNS)
BUILD_RULE_COLUMNS = list(_BUILD_RULE_COLUMNS)


def fetch_replica_tags(
    acr: AcrClient,
    repos: set[tuple[str, str]],
    client_for_instance: Callable[[str, str | None], AcrClient],
    readings: tuple[retention.Reading, ...] | None = (retention.DEFAULT_READING,),
) -> pd.DataFrame:
    """The tags that sync targets really hold for ``repos``, under the SOURCE repository's name.

    Reads the instance's sync rules once, then each target repository's tags; a target
    repository that does not exist (sync never ran) simply holds nothing. A sync rule
    whose target is this instance itself never counts (a copy inside the instance goes
    with the instance's own GC). A copy counts only while the target's own lifecycle rules
    retain it under every one of ``readings`` (None: all eight): a copy the target's next
    GC may delete is no copy.
    """
    reader = ReplicaReader(acr, client_for_instance, readings)
    return reader.frame([reader.read(repos)])


class ReplicaReader:
    """:func:`fetch_replica_tags` in parts: one reader serves several sets of repositories
    (the plan's tag batches, read as each completes) and still makes each listing once —
    the sync rules, a target namespace's repositories, a target instance's lifecycle rules
    — so the calls are those of one :func:`fetch_replica_tags` over their union. Thread-safe:
    the batches read at the same time."""

    def __init__(
        self,
        acr: AcrClient,
        client_for_instance: Callable[[str, str | None], AcrClient],
        readings: tuple[retention.Reading, ...] | None = (retention.DEFAULT_READING,),
    ) -> None:
        self.acr, self.client_for_instance, self.readings = acr, client_for_instance, readings
        self._lock = threading.Lock()
        self._once: dict[Hashable, Future] = {}

    def _once_for(self, key: Hashable, read: Callable[[], Any]) -> Any:
        """``read()`` the first time ``key`` is asked for; later askers wait for that answer."""
        with self._lock:
            future = self._once.get(key)
            owner = future is None
            if owner:
                future = self._once[key] = Future()
        if owner:
            try:
                future.set_result(read())
            except BaseException as error:
                future.set_exception(error)
        return future.result()

    def read(self, repos: set[tuple[str, str]]) -> list[tuple]:
        """Rows for ``repos``, each led by its sync rule's position in the listing (for
        :meth:`frame`'s order)."""
        rows: list[tuple] = []
        sync_rules = self._once_for("sync-rules", lambda: list(self.acr.list_sync_rules()))
        for position, rule in enumerate(sync_rules):
            source = (rule.local_namespace, rule.local_repo)
            if source not in repos or not rule.target_instance_id or rule.target_instance_id == self.acr.instance_id:
                continue
            target_acr = self.client_for_instance(rule.target_instance_id, rule.target_region)
            repo_ids = self._once_for(
                ("repositories", rule.target_instance_id, rule.target_namespace),
                lambda: {r.name: r.repo_id for r in target_acr.list_repositories(namespace=rule.target_namespace)},
            )
            target_name = rule.target_repo or rule.local_repo
            target_repo_id = repo_ids.get(target_name)
            if target_repo_id is None:
                continue
            target_rules = self._once_for(("rules", rule.target_instance_id), lambda: fetch_rules(target_acr))
            held = fetch_tags(target_acr, pd.DataFrame([(rule.target_namespace, target_name, target_repo_id)],
                                                       columns=REPOSITORY_COLUMNS), 1)
            kept = retention.plan(held, target_rules, readings=self.readings)
            for t in kept[~kept["expired"]].itertuples(index=False):
                rows.append((position, source[0], source[1], t.tag, t.digest, rule.target_instance_id))
        return rows

    @staticmethod
    def frame(parts: Iterable[list[tuple]]) -> pd.DataFrame:
        """The replica frame from :meth:`read`'s parts, in sync-rule order as one read makes it."""
        rows = sorted((row for part in parts for row in part), key=lambda row: row[0])
        return pd.DataFrame([row[1:] for row in rows], columns=REPLICA_COLUMNS).drop_duplicates(ignore_index=True)


def fetch_build_rules(acr: AcrClient, repositories: pd.DataFrame, concurrency: int) -> pd.DataFrame:
    """Build rules of ``repositories`` that have a source-code binding (others never count)."""

    def one(repo: tuple[str, str, str]) -> list[tuple]:
        namespace, name, repo_id = repo
        resource = f"{namespace}/{name}"
        if acr.get_source_code_repo(repo_id, resource=resource) is None:
            return []
        return [
            (namespace, name, rule.image_tag, True)
            for rule in acr.list_build_rules(repo_id, resource=resource)
            if rule.image_tag
        ]

    repos = list(repositories[REPOSITORY_COLUMNS].itertuples(index=False, name=None))
    with ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(repos) or 1))) as pool:
        rows = [row for found in pool.map(one, repos) for row in found]
    return pd.DataFrame(rows, columns=BUILD_RULE_COLUMNS)
