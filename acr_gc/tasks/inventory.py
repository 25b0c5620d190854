"""Inventory of an instance into pandas DataFrames (the read-only first step).

What is read, and the frames it becomes (the planner's input contracts, see
``acr_gc.rules``):

- ``repositories``: namespace, repo, repo_id — image repositories only (charts are
  listed by other actions and are never planned);
- ``tags``: namespace, repo, repo_id, tag, digest, image_size, updated (UTC);
- ``rules``: rule_id, scope, namespace, repo, retention_tag_count, tag_regexp,
  enable_delete_tag;
- ``charts``: namespace, repo — counted for the report's caveats only.

Tags are fetched per batch of repositories: one Prefect task run per batch (never per
tag or per repository), and inside a batch a thread pool as wide as ``api.concurrency``.
Every call goes through the adapters' shared rate limiter, so the pool's width never
exceeds the quota, it only hides latency.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pandas as pd

from acr_gc.cloud.acr import AcrClient
from acr_gc.rules.regenerability import BUILD_RULE_COLUMNS as _BUILD_RULE_COLUMNS
from acr_gc.rules.regenerability import REPLICA_COLUMNS as _REPLICA_COLUMNS
from acr_gc.rules.retention import RULE_COLUMNS as _RULE_COLUMNS
from acr_gc.rules.retention import TAG_COLUMNS as _TAG_COLUMNS

REPOSITORY_COLUMNS = ["namespace", "repo", "repo_id"]
# The planner's input contracts (acr_gc.rules) are the frames' shapes.
TAG_COLUMNS = list(_TAG_COLUMNS)
RULE_COLUMNS = list(_RULE_COLUMNS)
CHART_COLUMNS = ["namespace", "repo"]


@dataclass
class Inventory:
    repositories: pd.DataFrame
    tags: pd.DataFrame
    rules: pd.DataFrame
    charts: pd.DataFrame


def fetch_repositories(acr: AcrClient) -> pd.DataFrame:
    rows = [(r.namespace, r.name, r.repo_id) for r in acr.list_repositories()]
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
        found = [
            (namespace, name, repo_id, t.tag, t.digest, t.image_size, t.updated)
            for t in acr.list_repo_tags(repo_id, resource=f"{namespace}/{name}")
        ]
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
        )
        for r in acr.list_lifecycle_rules()
    ]
    frame = pd.DataFrame(rows, columns=RULE_COLUMNS)
    frame["retention_tag_count"] = frame["retention_tag_count"].astype("Int64")
    frame["enable_delete_tag"] = frame["enable_delete_tag"].astype(bool)
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
) -> pd.DataFrame:
    """The tags that sync targets hold for ``repos``, under the SOURCE repository's name.

    Reads the instance's sync rules once, then each target repository's tags; a target
    repository that does not exist (sync never ran) simply holds nothing.
    """
    rows: list[tuple] = []
    repo_ids: dict[tuple[str, str], dict[str, str]] = {}  # (target instance, namespace) -> name -> id
    for rule in acr.list_sync_rules():
        source = (rule.local_namespace, rule.local_repo)
        if source not in repos or not rule.target_instance_id:
            continue
        target_acr = client_for_instance(rule.target_instance_id, rule.target_region)
        key = (rule.target_instance_id, rule.target_namespace)
        if key not in repo_ids:
            repo_ids[key] = {r.name: r.repo_id for r in target_acr.list_repositories(namespace=rule.target_namespace)}
        target_repo_id = repo_ids[key].get(rule.target_repo or rule.local_repo)
        if target_repo_id is None:
            continue
        for t in target_acr.list_repo_tags(target_repo_id, resource=f"{rule.target_namespace}/{rule.target_repo}"):
            rows.append((source[0], source[1], t.tag, t.digest, rule.target_instance_id))
    return pd.DataFrame(rows, columns=REPLICA_COLUMNS).drop_duplicates(ignore_index=True)


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
