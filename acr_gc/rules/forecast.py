"""The exact forecast: mark and sweep over the manifest graph of the whole instance (DESIGN 3).

A GC deletes tags, then frees every manifest no surviving tag reaches and every blob no
surviving manifest references. Manifests are blobs too (their documents are stored as
blob objects), so each tagged digest has a *closure*: its own document, its config and
layers, and for an index the closures of its child manifests. Deleting a set of tags
then frees exactly the blobs in the closures of the digests that lose their last tag and
in no closure of a digest that keeps one -- shared base layers and manifests reused by
several repositories or indexes counted once, wherever they are.

The closures feed :func:`acr_gc.rules.expected_bytes` (one freed byte attributed to one
namespace, so the namespace rows sum to the total). A tagged digest whose manifest (or a
child's) could not be read has no closure and falls back to its image size; the figure is
then an upper bound, and ``unreadable`` names those digests.

``deleted`` is an argument, not read from the plan, so the planner can ask for the
certain set and for certain ∪ possible (:func:`forecast_range`), and the what-if command
for any rule variant, against one manifest graph. Pure: no I/O.

``graph`` maps a digest to a manifest-like object with ``size`` (its document's bytes),
``blobs`` ((digest, size), config first) and ``children`` (child manifest digests).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from acr_gc.rules.expected_bytes import ExpectedBytes, expected_bytes
from acr_gc.rules.retention import require_columns

TAG_COLUMNS = ("namespace", "repo", "tag", "digest", "image_size")
BLOBS_PREFIX = "docker/registry/v2/blobs/"


@dataclass(frozen=True)
class Forecast:
    bytes: int
    is_upper_bound: bool
    by_namespace: pd.DataFrame  # as ExpectedBytes.by_namespace
    unreadable: tuple[str, ...]  # tagged digests counted by image size (manifest not read)
    tags_deleted: int

    @property
    def expected(self) -> ExpectedBytes:
        return ExpectedBytes(self.bytes, self.is_upper_bound, self.by_namespace)


def closure(digest: str, graph: Mapping) -> dict[str, int] | None:
    """Blob digest → size for everything ``digest`` keeps alive; None when part of it is unread."""
    out: dict[str, int] = {}
    stack, seen = [digest], set()
    while stack:
        current = stack.pop()
        if current in seen:
            continue
        seen.add(current)
        manifest = graph.get(current)
        if manifest is None:
            return None
        out[current] = int(manifest.size)
        for blob, size in manifest.blobs:
            out[blob] = int(size)
        stack.extend(manifest.children)
    return out


def closure_rows(digests: Iterable[str], graph: Mapping) -> tuple[pd.DataFrame, list[str]]:
    """(digest, layer, size) rows for the readable ``digests``, and the unreadable ones."""
    rows_digest: list[str] = []
    rows_blob: list[str] = []
    rows_size: list[int] = []
    unreadable: list[str] = []
    for digest in dict.fromkeys(digests):
        blobs = closure(digest, graph)
        if blobs is None:
            unreadable.append(digest)
            continue
        rows_digest.extend([digest] * len(blobs))
        rows_blob.extend(blobs)
        rows_size.extend(blobs.values())
    frame = pd.DataFrame({"digest": pd.Series(rows_digest, dtype=object), "layer": pd.Series(rows_blob, dtype=object),
                          "size": np.asarray(rows_size, dtype=np.int64)})
    return frame, unreadable


def _deleted_mask(tags: pd.DataFrame, deleted) -> np.ndarray:
    if isinstance(deleted, (pd.Series, np.ndarray, list)) and len(deleted) == len(tags) and not (
        len(deleted) and isinstance(next(iter(deleted)), tuple)
    ):
        return np.asarray(deleted, dtype=bool)
    keys = set(deleted)
    return np.fromiter(((ns, repo, tag) in keys for ns, repo, tag in zip(tags["namespace"], tags["repo"], tags["tag"])),
                       dtype=bool, count=len(tags))


def forecast(tags: pd.DataFrame, graph: Mapping, deleted, rows: tuple[pd.DataFrame, list[str]] | None = None) -> Forecast:
    """Bytes a GC frees when it deletes ``deleted`` (a boolean mask over ``tags`` or a set of
    (namespace, repo, tag)); ``rows``: :func:`closure_rows` of the tags' digests, when the
    caller asks for several variants."""
    require_columns(tags, TAG_COLUMNS, "tags")
    mask = _deleted_mask(tags, deleted)
    layers, unreadable = rows if rows is not None else closure_rows(tags["digest"], graph)
    planned = tags[["namespace", "digest", "image_size"]].assign(expired=mask)
    result = expected_bytes(planned, layers)
    lost = set(tags["digest"][mask]) - set(tags["digest"][~mask])
    return Forecast(result.bytes, result.is_upper_bound, result.by_namespace,
                    tuple(d for d in unreadable if d in lost), int(mask.sum()))


def forecast_range(tags: pd.DataFrame, graph: Mapping, certain, possible) -> tuple[Forecast, Forecast]:
    """(certain, certain ∪ possible): the low and high ends of a conservative plan's saving."""
    rows = closure_rows(tags["digest"], graph)
    low_mask = _deleted_mask(tags, certain)
    high_mask = low_mask | _deleted_mask(tags, possible)
    return forecast(tags, graph, low_mask, rows), forecast(tags, graph, high_mask, rows)


def blob_digest(key: str) -> str | None:
    """``docker/registry/v2/blobs/sha256/ab/<hex>/data`` → ``sha256:<hex>``; None outside the layout."""
    if not key.startswith(BLOBS_PREFIX) or not key.endswith("/data"):
        return None
    parts = key[len(BLOBS_PREFIX):].split("/")
    if len(parts) != 4:
        return None
    return f"{parts[0]}:{parts[2]}"


def unreferenced_before(objects: pd.DataFrame, tags: pd.DataFrame, graph: Mapping) -> tuple[int, bool]:
    """Bytes of the bucket's blob objects (``objects``: key, size) that no tagged manifest
    reaches: already unreferenced before the run (untagged manifests, orphaned uploads), which
    a GC frees too. Second value: an upper bound (some tagged manifest was unreadable)."""
    layers, unreadable = closure_rows(tags["digest"], graph)
    referenced = set(layers["layer"])
    total = 0
    for key, size in zip(objects["key"], objects["size"]):
        digest = blob_digest(key)
        if digest is not None and digest not in referenced:
            total += int(size)
    return total, bool(unreadable)
