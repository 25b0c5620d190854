"""The forecast's reads as Prefect tasks: the manifest graph (registry API, cached in the
ledger by digest) and the bucket's blob objects. The arithmetic is ``rules.forecast``."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from acr_gc.cloud.oss import OssClient
from acr_gc.cloud.registry import Manifest, RegistryClient
from acr_gc.ledger.manifests import load_manifests, save_manifests
from acr_gc.ledger.store import Ledger
from acr_gc.rules.forecast import BLOBS_PREFIX


@dataclass
class ManifestGraph:
    """Every manifest the instance's tags reach, and what reading it cost."""

    manifests: dict[str, Manifest] = field(default_factory=dict)
    unreadable: dict[str, str] = field(default_factory=dict)  # digest -> why
    fetched: int = 0  # manifests read from the registry this time
    cached: int = 0  # manifests the ledger already had


def read_graph(client: RegistryClient, tags: pd.DataFrame, ledger: Ledger) -> ManifestGraph:
    """Cache first, then the registry for what the cache lacks; index children in the next wave,
    so a child another index already brought into the cache is not fetched again."""
    refs = list(dict.fromkeys(zip(tags["namespace"], tags["repo"], tags["digest"])))
    graph = ManifestGraph()
    where: dict[str, tuple[str, str]] = {}
    for namespace, repo, digest in refs:
        where.setdefault(digest, (namespace, repo))
    wanted = set(where)
    while wanted:
        cached = load_manifests(ledger, wanted)
        graph.manifests.update(cached)
        graph.cached += len(cached)
        missing = [(*where[d], d) for d in wanted if d not in cached]
        fetched, unreadable = client.fetch_all(missing, known=set(graph.manifests), follow_children=False)
        save_manifests(ledger, fetched.values())
        graph.manifests.update(fetched)
        graph.unreadable.update(unreadable)
        graph.fetched += len(fetched)
        # the next wave: children of this wave's indexes that are not read yet
        wanted = set()
        for digest, manifest in [*cached.items(), *fetched.items()]:
            for child in manifest.children:
                if child not in graph.manifests and child not in graph.unreadable:
                    where.setdefault(child, where[digest])
                    wanted.add(child)
    return graph


def list_blob_objects(oss: OssClient) -> pd.DataFrame:
    """key, size of the bucket's current objects in the registry's blob layout."""
    objects = oss.list_objects(prefix=BLOBS_PREFIX)
    return pd.DataFrame({"key": [o.key for o in objects], "size": [int(o.size) for o in objects]})


NO_RETRY = dict(cache_policy=NO_CACHE, retries=0)  # the adapters retry each call themselves


@task(name="read-manifests", **NO_RETRY)
def read_manifests(registry: RegistryClient, ledger_url: str, tags: pd.DataFrame) -> ManifestGraph:
    """The manifest graph of ``tags``, through the ledger's cache at ``ledger_url``."""
    return read_graph(registry, tags, Ledger(ledger_url))


@task(name="list-blob-objects", **NO_RETRY)
def blob_objects(oss: OssClient) -> pd.DataFrame:
    return list_blob_objects(oss)
