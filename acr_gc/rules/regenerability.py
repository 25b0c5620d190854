"""Regenerability of expired tags and the gate (DESIGN section 4).

Deleted tags cannot be recovered, so before any change every expired tag must be shown
to be re-creatable, or explicitly accepted as lost by the operator's allow list.

Inputs
------
``planned`` -- :func:`acr_gc.rules.retention.plan` output (namespace, repo, tag, digest,
expired, ...).

``replica_tags`` -- tags found on the sync targets, mapped back to the SOURCE repository
coordinates by the inventory: namespace, repo, tag, digest (str), target_instance_id (str).

``build_rules`` -- namespace, repo, image_tag (str pattern: ``*`` matches any run of
characters, possibly empty; everything else literal), has_source_code (bool: the repository
has a source-code binding; rules of repositories without one never count).

``manifest_entries`` -- :func:`acr_gc.rules.manifest.load_manifest` output: namespace,
repo, tag_glob, source, line_no.

``allow`` -- the ``policy.allow_unregenerable`` list of ``"namespace/repo:tag-glob"``
strings, or the frame :func:`acr_gc.rules.manifest.parse_allow_list` makes of it.

Any of the four may be None or empty.

Output of :func:`regenerability`: ``planned`` plus

* ``regenerable_by`` (str): for an expired tag the FIRST that holds of ``alias`` (a
  retained tag of the same repository has the same digest), ``replica`` (a sync target
  holds the same tag with the same digest), ``build-rule``, ``manifest``, else ``none``;
  ``""`` for a retained tag (not applicable);
* ``regenerate_from`` (str): how, for ``deleted_tags.csv`` -- ``retained tag <tag>``,
  ``replica on <target_instance_id>``, ``build rule image_tag <pattern>``,
  ``<source> (manifest line <n>)``; ``""`` otherwise;
* ``allowed`` (bool): a ``none`` tag covered by the allow list (False for every other row).

:func:`gate` passes when no expired tag is ``none`` without being allowed.

Everything is joins on integer keys; glob patterns are evaluated once per distinct
(pattern, tag) pair, never per row.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

from acr_gc.rules.blast_radius import blast_radius
from acr_gc.rules.manifest import compile_tag_glob, parse_allow_list
from acr_gc.rules.retention import FrameContractError, require_columns

PLANNED_COLUMNS = ("namespace", "repo", "tag", "digest", "expired")
REPLICA_COLUMNS = ("namespace", "repo", "tag", "digest", "target_instance_id")
BUILD_RULE_COLUMNS = ("namespace", "repo", "image_tag", "has_source_code")
MANIFEST_ENTRY_COLUMNS = ("namespace", "repo", "tag_glob", "source", "line_no")
ALLOW_FRAME_COLUMNS = ("namespace", "repo", "tag_glob")

ALIAS, REPLICA, BUILD_RULE, MANIFEST, NONE = "alias", "replica", "build-rule", "manifest", "none"


@lru_cache(maxsize=4096)
def compile_image_tag_pattern(pattern: str) -> re.Pattern[str]:
    """A build rule's image tag pattern as a whole-string regexp: only ``*`` is special."""
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")), re.DOTALL)


def _joint_keys(left: pd.DataFrame, right: pd.DataFrame, columns: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Dense int64 keys for the value tuples of ``columns``, consistent across both frames.

    Equal tuples get equal keys, so membership and joins become integer operations
    instead of multi-column string merges."""
    n_left = len(left)
    key = np.zeros(n_left + len(right), dtype=np.int64)
    for column in columns:
        values = pd.concat(
            [left[column].astype(object), right[column].astype(object)], ignore_index=True
        )
        codes, uniques = pd.factorize(values)
        key = key * (len(uniques) + 1) + (codes.astype(np.int64) + 1)  # missing (-1) -> 0
        key = pd.factorize(key)[0].astype(np.int64)  # re-densify so products never overflow
    return key[:n_left], key[n_left:]


def _first_match_in(keys: np.ndarray, table_keys: np.ndarray) -> np.ndarray:
    """For each of ``keys``, the index of its first occurrence in ``table_keys``, or -1."""
    if len(table_keys) == 0:
        return np.full(len(keys), -1, dtype=np.int64)
    distinct, first = np.unique(table_keys, return_index=True)
    slot = np.minimum(np.searchsorted(distinct, keys), len(distinct) - 1)
    return np.where(distinct[slot] == keys, first[slot], -1).astype(np.int64)


def _first_pattern_covering(
    cand: pd.DataFrame,
    patterns: pd.DataFrame,
    pattern_column: str,
    compile_pattern: Callable[[str], re.Pattern[str]],
) -> np.ndarray:
    """For each candidate row (namespace, repo, tag), the index of the first pattern row of
    the same repository whose pattern covers the whole tag, or -1.

    Pattern rows are joined to candidates by repository, then each distinct
    (pattern, tag) pair is matched once."""
    result = np.full(len(cand), -1, dtype=np.int64)
    if len(cand) == 0 or len(patterns) == 0:
        return result
    cand_repo, pat_repo = _joint_keys(cand, patterns, ("namespace", "repo"))
    pairs = pd.DataFrame({"repo": cand_repo, "row": np.arange(len(cand))}).merge(
        pd.DataFrame({"repo": pat_repo, "pattern_row": np.arange(len(patterns))}), on="repo"
    )
    if len(pairs) == 0:
        return result
    pattern_codes, pattern_texts = pd.factorize(patterns[pattern_column].astype(object))
    tag_codes, tag_texts = pd.factorize(cand["tag"].astype(object))
    pair_pattern = pattern_codes[pairs["pattern_row"].to_numpy()].astype(np.int64)
    pair_tag = tag_codes[pairs["row"].to_numpy()].astype(np.int64)
    distinct, inverse = np.unique(pair_pattern * len(tag_texts) + pair_tag, return_inverse=True)
    pattern_values = np.asarray(pattern_texts, dtype=object)
    tag_values = np.asarray(tag_texts, dtype=object)
    hits = np.fromiter(
        (
            compile_pattern(pattern_values[key // len(tag_texts)]).fullmatch(tag_values[key % len(tag_texts)])
            is not None
            for key in distinct.tolist()
        ),
        dtype=bool,
        count=len(distinct),
    )
    matched = pairs[hits[inverse.reshape(-1)]]
    first = matched.groupby("row", sort=False)["pattern_row"].min()
    result[first.index.to_numpy()] = first.to_numpy()
    return result


def _frame_or_empty(frame: pd.DataFrame | None, columns: Sequence[str], what: str) -> pd.DataFrame:
    if frame is None:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    require_columns(frame, tuple(columns), what)
    return frame


def regenerability(
    planned: pd.DataFrame,
    replica_tags: pd.DataFrame | None,
    build_rules: pd.DataFrame | None,
    manifest_entries: pd.DataFrame | None,
    allow: Sequence[str] | pd.DataFrame | None,
) -> pd.DataFrame:
    """Add regenerable_by, regenerate_from and allowed to the planned tags (module docstring)."""
    require_columns(planned, PLANNED_COLUMNS, "planned")
    replicas = _frame_or_empty(replica_tags, REPLICA_COLUMNS, "replica_tags")
    builds = _frame_or_empty(build_rules, BUILD_RULE_COLUMNS, "build_rules")
    manifest = _frame_or_empty(manifest_entries, MANIFEST_ENTRY_COLUMNS, "manifest_entries")
    if allow is None or not isinstance(allow, pd.DataFrame):
        allow_frame = parse_allow_list(allow)
    else:
        allow_frame = _frame_or_empty(allow, ALLOW_FRAME_COLUMNS, "allow")
    if planned["digest"].isna().any() or planned["tag"].isna().any():
        raise FrameContractError("planned.tag and planned.digest must not be missing")

    n_rows = len(planned)
    expired = planned["expired"].to_numpy(dtype=bool)
    verdict = np.where(expired, NONE, "").astype(object)
    how = np.full(n_rows, "", dtype=object)
    tag_values = planned["tag"].to_numpy(dtype=object)
    open_rows = np.flatnonzero(expired)  # expired rows still without a verdict

    def settle(rows: np.ndarray, label: str, detail: np.ndarray) -> None:
        nonlocal open_rows
        verdict[rows] = label
        how[rows] = detail
        open_rows = np.setdiff1d(open_rows, rows, assume_unique=True)

    # 1. alias: a retained tag of the same repository with the same digest.
    if len(open_rows) and (~expired).any():
        digest_key, _ = _joint_keys(planned, planned.iloc[:0], ("namespace", "repo", "digest"))
        kept_rows = np.flatnonzero(~expired)
        hit = _first_match_in(digest_key[open_rows], digest_key[kept_rows])
        found = hit >= 0
        settle(open_rows[found], ALIAS, "retained tag " + tag_values[kept_rows[hit[found]]])

    # 2. replica: a sync target holds the same tag with the same digest.
    if len(open_rows) and len(replicas):
        cand = planned.iloc[open_rows]
        cand_key, replica_key = _joint_keys(cand, replicas, ("namespace", "repo", "tag", "digest"))
        hit = _first_match_in(cand_key, replica_key)
        found = hit >= 0
        targets = replicas["target_instance_id"].to_numpy(dtype=object)
        settle(open_rows[found], REPLICA, "replica on " + targets[hit[found]].astype(str).astype(object))

    # 3. build-rule: a bound source repository and a rule whose image tag pattern covers the tag.
    if len(open_rows) and len(builds):
        bound = builds[builds["has_source_code"].fillna(False).astype(bool) & builds["image_tag"].notna()]
        bound = bound.reset_index(drop=True)
        hit = _first_pattern_covering(planned.iloc[open_rows], bound, "image_tag", compile_image_tag_pattern)
        found = hit >= 0
        patterns = bound["image_tag"].to_numpy(dtype=object)
        settle(open_rows[found], BUILD_RULE, "build rule image_tag " + patterns[hit[found]])

    # 4. manifest: the operator's regeneration manifest covers it.
    if len(open_rows) and len(manifest):
        entries = manifest.reset_index(drop=True)
        hit = _first_pattern_covering(planned.iloc[open_rows], entries, "tag_glob", compile_tag_glob)
        found = hit >= 0
        sources = entries["source"].astype(str).to_numpy(dtype=object)
        lines = entries["line_no"].astype(str).to_numpy(dtype=object)
        detail = sources[hit[found]] + " (manifest line " + lines[hit[found]] + ")"
        settle(open_rows[found], MANIFEST, detail)

    # What is left is `none`; the allow list may accept it as lost.
    allowed = np.zeros(n_rows, dtype=bool)
    if len(open_rows) and len(allow_frame):
        hit = _first_pattern_covering(
            planned.iloc[open_rows], allow_frame.reset_index(drop=True), "tag_glob", compile_tag_glob
        )
        allowed[open_rows[hit >= 0]] = True

    return planned.assign(
        regenerable_by=pd.Series(verdict, index=planned.index, dtype=object),
        regenerate_from=pd.Series(how, index=planned.index, dtype=object),
        allowed=pd.Series(allowed, index=planned.index),
    )


@dataclass(frozen=True)
class GateResult:
    """``passed`` is False when some expired tag can be neither regenerated nor is allowed
    (``blocking`` holds those rows, all columns of the input, to list for the operator), or
    when the plan deletes too much (``blast_radius``: the one-line reason, naming the
    repositories; None within bounds)."""

    passed: bool
    blocking: pd.DataFrame
    blast_radius: str | None = None


def gate(regenerability_frame: pd.DataFrame, max_delete_share: float | None = None,
         allow_emptied: Sequence[str] = ()) -> GateResult:
    """Section 4: stop before any change while an expired `none` tag is not allow-listed,
    or (with ``max_delete_share``) while the plan's blast radius is too large."""
    require_columns(regenerability_frame, ("expired", "regenerable_by", "allowed"), "regenerability")
    blocked = (
        regenerability_frame["expired"].to_numpy(dtype=bool)
        & (regenerability_frame["regenerable_by"].to_numpy(dtype=object) == NONE)
        & ~regenerability_frame["allowed"].to_numpy(dtype=bool)
    )
    blocking = regenerability_frame[blocked]
    reason = None
    if max_delete_share is not None:
        reason = blast_radius(regenerability_frame, max_delete_share, allow_emptied).message(max_delete_share)
    return GateResult(passed=not bool(blocked.any()) and reason is None, blocking=blocking, blast_radius=reason)
