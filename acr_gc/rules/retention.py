"""Retention: which image tags the instance's lifecycle rules expire (DESIGN section 3).

This is the planner's own implementation of section 3. The emulator's GC implements the
same section independently, so that each checks the other: nothing here may be shared
with ``acr_gc.emulator``.

Input contracts
---------------
``tags`` -- one row per image tag (chart repositories never appear here):

==============  ==========================  =========================================
column          dtype                       meaning
==============  ==========================  =========================================
namespace       str                         namespace name
repo            str                         repository name (unique within namespace)
repo_id         str                         the API's RepoId (carried through, unused)
tag             str                         tag name
digest          str                         manifest digest ``sha256:...``
image_size      int64                       image size in bytes (sum of its layers)
updated         datetime64[ns, UTC]         image update time (any datetime64 unit or
                                            time zone is accepted; only order matters)
==============  ==========================  =========================================

A repository is identified by ``(namespace, repo)``: rules name repositories that way.
``namespace``, ``repo``, ``tag`` and ``updated`` must not be missing.

``rules`` -- one row per ListArtifactLifecycleRule rule:

=====================  ==================  ==============================================
column                 dtype               meaning
=====================  ==================  ==============================================
rule_id                str (or int)        the rule's id, used in messages and retained_by
scope                  str                 ``INSTANCE`` | ``NAMESPACE`` | ``REPO``
namespace              str or None         required for NAMESPACE and REPO scope
repo                   str or None         required for REPO scope
retention_tag_count    Int64 (nullable)    keep the N newest tags; missing: none by count
tag_regexp             str or None         keep tags whose WHOLE name matches (re.fullmatch);
                                           missing or "": none by regexp
enable_delete_tag      bool                False: the rule deletes nothing and is ignored
=====================  ==================  ==============================================

Output of :func:`plan`: the ``tags`` frame (same index, same row order) plus

* ``expired`` (bool) -- at least one rule applies to the repository and none retains it;
* ``retained_by`` (str) -- the ids of the applying rules that retain the tag, joined with
  ``,`` in the order the rules appear in ``rules``; ``""`` for an expired tag;
  ``"no-rule"`` when no enabled rule applies to the repository (every tag is kept).

How it stays fast at 10^6 rows: rows are sorted once by (repository, updated desc, tag
asc) so every repository is one contiguous block in rank order; the count rule of a
(rule, repository) pair is then the first ``k`` positions of that block, and each distinct
regexp is run once over the distinct tag strings of the repositories its rules apply to.
Nothing loops over rows in Python.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

TAG_COLUMNS = ("namespace", "repo", "repo_id", "tag", "digest", "image_size", "updated")
RULE_COLUMNS = (
    "rule_id",
    "scope",
    "namespace",
    "repo",
    "retention_tag_count",
    "tag_regexp",
    "enable_delete_tag",
)
SCOPES = ("INSTANCE", "NAMESPACE", "REPO")
NO_RULE = "no-rule"


class RuleError(ValueError):
    """A lifecycle rule that cannot be evaluated; the message names the rule.

    The CLI turns it into exit code 2 (bad input)."""


class FrameContractError(ValueError):
    """An input DataFrame that does not meet its documented contract."""


def require_columns(frame: pd.DataFrame, columns: tuple[str, ...] | list[str], what: str) -> None:
    """Fail early, naming the frame and the missing columns, instead of a KeyError later."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise FrameContractError(f"{what} frame lacks column(s) {', '.join(missing)}")


def _is_missing(value: object) -> bool:
    """None, NaN, NaT and pd.NA all mean "not set" in a rules frame."""
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # list-likes are never "missing" scalars
        return False


@dataclass(frozen=True)
class LifecycleRule:
    """One validated lifecycle rule, as the planner uses it."""

    rule_id: str
    scope: str
    namespace: str | None
    repo: str | None
    retention_tag_count: int | None
    tag_regexp: str | None
    enable_delete_tag: bool

    def describe_scope(self) -> str:
        """The rule's scope the way an operator reads it in the console."""
        if self.scope == "NAMESPACE":
            return f"scope NAMESPACE {self.namespace}"
        if self.scope == "REPO":
            return f"scope REPO {self.namespace}/{self.repo}"
        return f"scope {self.scope}"


def parse_rules(rules: pd.DataFrame) -> list[LifecycleRule]:
    """Validate every rule row and return them in frame order.

    Rules are few (one per namespace or repository at most), so a plain loop is right
    here. A disabled rule deletes nothing, so only its shape is checked, not its regexp:
    an invalid regexp in a rule that can never run must not stop a reclamation.
    """
    require_columns(rules, RULE_COLUMNS, "rules")
    parsed: list[LifecycleRule] = []
    for row in rules.itertuples(index=False):
        rule_id = "" if _is_missing(row.rule_id) else str(row.rule_id)
        scope = None if _is_missing(row.scope) else str(row.scope)
        namespace = None if _is_missing(row.namespace) else str(row.namespace)
        repo = None if _is_missing(row.repo) else str(row.repo)
        where = f"lifecycle rule {rule_id or '<no id>'}"
        if not rule_id:
            raise RuleError(f"{where}: missing rule_id")
        if scope not in SCOPES:
            raise RuleError(f"{where}: scope must be one of {', '.join(SCOPES)}, found {scope!r}")
        if scope in ("NAMESPACE", "REPO") and not namespace:
            raise RuleError(f"{where} (scope {scope}): no namespace")
        if scope == "REPO" and not repo:
            raise RuleError(f"{where} (scope REPO {namespace}/?): no repository")

        enable = row.enable_delete_tag
        if _is_missing(enable) or not isinstance(enable, (bool, np.bool_)):
            raise RuleError(f"{where}: enable_delete_tag must be true or false, found {enable!r}")

        count_value = row.retention_tag_count
        count: int | None = None
        if not _is_missing(count_value):
            try:
                whole = not isinstance(count_value, (bool, np.bool_)) and float(count_value) == int(count_value)
            except (TypeError, ValueError):
                whole = False
            if not whole:
                raise RuleError(f"{where}: RetentionTagCount must be a whole number, found {count_value!r}")
            count = int(count_value)
            if count < 0:
                raise RuleError(f"{where}: RetentionTagCount must not be negative, found {count}")

        regexp = None if _is_missing(row.tag_regexp) or row.tag_regexp == "" else str(row.tag_regexp)
        rule = LifecycleRule(rule_id, scope, namespace, repo, count, regexp, bool(enable))
        if rule.enable_delete_tag and regexp is not None:
            try:
                re.compile(regexp)
            except re.error as exc:
                raise RuleError(
                    f"lifecycle rule {rule_id} ({rule.describe_scope()}): invalid TagRegexp {regexp!r}: {exc}"
                ) from None
        parsed.append(rule)
    return parsed


def _expand_ranges(starts: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All positions ``starts[i] .. starts[i]+lengths[i]-1``, concatenated, with ``i`` for each.

    The vectorised form of ``[p for i in range(n) for p in range(starts[i], starts[i]+lengths[i])]``.
    """
    lengths = lengths.astype(np.int64, copy=False)
    segment = np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)
    segment_begin = np.cumsum(lengths) - lengths
    offsets = np.arange(int(lengths.sum()), dtype=np.int64) - segment_begin[segment]
    return starts.astype(np.int64, copy=False)[segment] + offsets, segment


def _update_keys(updated: pd.Series) -> np.ndarray:
    """Image update times as int64 nanoseconds since the epoch (UTC), for ordering."""
    if not (pd.api.types.is_datetime64_any_dtype(updated)):
        raise FrameContractError(f"tags.updated must be datetime64 (UTC), found dtype {updated.dtype}")
    index = pd.DatetimeIndex(updated)
    if index.hasnans:
        raise FrameContractError("tags.updated has missing values; every tag needs its update time")
    return index.as_unit("ns").asi8


def _repository_codes(tags: pd.DataFrame) -> tuple[np.ndarray, pd.DataFrame]:
    """A dense integer code per (namespace, repo) and the repositories frame it indexes.

    Factorising the two name columns separately and combining the integer codes avoids
    building 10^6 concatenated strings."""
    for column in ("namespace", "repo", "tag"):
        if tags[column].isna().any():
            raise FrameContractError(f"tags.{column} has missing values")
    ns_codes, ns_names = pd.factorize(tags["namespace"])
    name_codes, repo_names = pd.factorize(tags["repo"])
    combined = ns_codes.astype(np.int64) * max(len(repo_names), 1) + name_codes
    repo_codes, combined_uniques = pd.factorize(combined)
    repositories = pd.DataFrame(
        {
            "repo_code": np.arange(len(combined_uniques), dtype=np.int64),
            "namespace": np.asarray(ns_names, dtype=object)[combined_uniques // max(len(repo_names), 1)],
            "repo": np.asarray(repo_names, dtype=object)[combined_uniques % max(len(repo_names), 1)],
        }
    )
    return repo_codes.astype(np.int64), repositories


def _applicable_pairs(active: list[LifecycleRule], repositories: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Every (rule index, repository code) where an enabled rule applies, by scope.

    Joins rather than per-rule scans, so one REPO rule per repository stays cheap."""
    rule_frame = pd.DataFrame(
        {
            "rule": np.arange(len(active), dtype=np.int64),
            "scope": [r.scope for r in active],
            "namespace": [r.namespace for r in active],
            "repo": [r.repo for r in active],
        },
        columns=["rule", "scope", "namespace", "repo"],
    )
    repo_codes = repositories["repo_code"].to_numpy()
    instance_rules = rule_frame.loc[rule_frame["scope"] == "INSTANCE", "rule"].to_numpy()
    parts_rule = [np.repeat(instance_rules, len(repo_codes))]
    parts_repo = [np.tile(repo_codes, len(instance_rules))]
    ns_rules = rule_frame.loc[rule_frame["scope"] == "NAMESPACE", ["rule", "namespace"]]
    if len(ns_rules):
        joined = ns_rules.merge(repositories[["repo_code", "namespace"]], on="namespace")
        parts_rule.append(joined["rule"].to_numpy())
        parts_repo.append(joined["repo_code"].to_numpy())
    repo_rules = rule_frame.loc[rule_frame["scope"] == "REPO", ["rule", "namespace", "repo"]]
    if len(repo_rules):
        joined = repo_rules.merge(repositories, on=["namespace", "repo"])
        parts_rule.append(joined["rule"].to_numpy())
        parts_repo.append(joined["repo_code"].to_numpy())
    return (
        np.concatenate(parts_rule).astype(np.int64),
        np.concatenate(parts_repo).astype(np.int64),
    )


def _retained_by_labels(
    positions: np.ndarray, rule_index: np.ndarray, rule_ids: np.ndarray, n_rows: int
) -> np.ndarray:
    """Per row, the comma-joined ids of the rules retaining it ("" when none).

    ``positions``/``rule_index`` are the (row, rule) retention pairs, sorted by row then
    rule and free of duplicates. Rows are grouped by how many rules retain them; within a
    group the distinct rule combinations are few, so each label string is built once."""
    labels = np.full(n_rows, "", dtype=object)
    if len(positions) == 0:
        return labels
    per_row = np.bincount(positions, minlength=n_rows)
    first_pair = np.cumsum(per_row) - per_row
    for width in np.unique(per_row[per_row > 0]):
        rows = np.flatnonzero(per_row == width)
        combos = rule_index[first_pair[rows][:, None] + np.arange(width)]
        if width == 1:
            labels[rows] = rule_ids[combos[:, 0]]
            continue
        distinct, inverse = np.unique(combos, axis=0, return_inverse=True)
        texts = np.array([",".join(rule_ids[j] for j in combo) for combo in distinct], dtype=object)
        labels[rows] = texts[inverse.reshape(-1)]
    return labels


def plan(tags: pd.DataFrame, rules: pd.DataFrame) -> pd.DataFrame:
    """Mark every tag expired or kept, by DESIGN section 3.

    Returns ``tags`` with ``expired`` and ``retained_by`` added (see the module docstring).
    Raises :class:`RuleError` for a rule that cannot be evaluated (e.g. an invalid
    TagRegexp) and :class:`FrameContractError` for frames that break their contract.
    """
    require_columns(tags, TAG_COLUMNS, "tags")
    active = [rule for rule in parse_rules(rules) if rule.enable_delete_tag]
    n_rows = len(tags)
    if n_rows == 0:
        return tags.assign(expired=pd.Series(dtype=bool), retained_by=pd.Series(dtype=object))

    repo_codes, repositories = _repository_codes(tags)
    update_keys = _update_keys(tags["updated"])
    # sort=True makes tag codes follow string order, so ties sort by tag name ascending.
    tag_codes, tag_names = pd.factorize(tags["tag"], sort=True)
    order = np.lexsort((tag_codes, -update_keys, repo_codes))
    sorted_repo = repo_codes[order]
    sorted_tag_code = tag_codes[order]
    repo_sizes = np.bincount(repo_codes, minlength=len(repositories))
    repo_starts = np.cumsum(repo_sizes) - repo_sizes  # block of repo r in sorted order

    pair_rule, pair_repo = _applicable_pairs(active, repositories)
    repo_has_rule = np.bincount(pair_repo, minlength=len(repositories)) > 0

    retained_pos: list[np.ndarray] = []
    retained_rule: list[np.ndarray] = []

    # Count rule: the first k positions of the repository's block (block is in rank order).
    counts = np.array([r.retention_tag_count or 0 for r in active], dtype=np.int64)
    by_count = counts[pair_rule] > 0
    if by_count.any():
        c_rule, c_repo = pair_rule[by_count], pair_repo[by_count]
        keep = np.minimum(counts[c_rule], repo_sizes[c_repo])
        positions, segment = _expand_ranges(repo_starts[c_repo], keep)
        retained_pos.append(positions)
        retained_rule.append(c_rule[segment])

    # Regexp rule: each distinct pattern once, over the distinct tags it can see.
    patterns = [r.tag_regexp for r in active]
    has_regexp = np.array([p is not None for p in patterns], dtype=bool)
    by_regexp = has_regexp[pair_rule] if len(active) else np.zeros(0, dtype=bool)
    if by_regexp.any():
        pattern_codes, pattern_texts = pd.factorize(pd.Series(patterns, dtype=object))
        r_rule, r_repo = pair_rule[by_regexp], pair_repo[by_regexp]
        r_pattern = pattern_codes[r_rule]
        grouped = np.argsort(r_pattern, kind="stable")
        r_rule, r_repo, r_pattern = r_rule[grouped], r_repo[grouped], r_pattern[grouped]
        positions, segment = _expand_ranges(repo_starts[r_repo], repo_sizes[r_repo])
        seg_pattern = r_pattern[segment]
        matched = np.zeros(len(positions), dtype=bool)
        bounds = np.searchsorted(seg_pattern, np.arange(len(pattern_texts) + 1))
        tag_name_values = np.asarray(tag_names, dtype=object)
        for code in range(len(pattern_texts)):
            lo, hi = bounds[code], bounds[code + 1]
            if lo == hi:
                continue
            fullmatch = re.compile(pattern_texts[code]).fullmatch
            distinct, inverse = np.unique(sorted_tag_code[positions[lo:hi]], return_inverse=True)
            hits = np.fromiter(
                (fullmatch(name) is not None for name in tag_name_values[distinct]),
                dtype=bool,
                count=len(distinct),
            )
            matched[lo:hi] = hits[inverse.reshape(-1)]
        retained_pos.append(positions[matched])
        retained_rule.append(r_rule[segment[matched]])

    if retained_pos:
        pair_keys = np.unique(
            np.concatenate(retained_pos) * max(len(active), 1) + np.concatenate(retained_rule)
        )
        positions = pair_keys // max(len(active), 1)
        rule_index = pair_keys % max(len(active), 1)
    else:
        positions = rule_index = np.zeros(0, dtype=np.int64)

    rule_ids = np.array([r.rule_id for r in active], dtype=object)
    sorted_labels = _retained_by_labels(positions, rule_index, rule_ids, n_rows)
    sorted_retained = np.zeros(n_rows, dtype=bool)
    sorted_retained[positions] = True
    sorted_applies = repo_has_rule[sorted_repo]
    sorted_expired = sorted_applies & ~sorted_retained
    sorted_labels[~sorted_applies] = NO_RULE

    expired = np.empty(n_rows, dtype=bool)
    expired[order] = sorted_expired
    retained_by = np.empty(n_rows, dtype=object)
    retained_by[order] = sorted_labels
    return tags.assign(
        expired=pd.Series(expired, index=tags.index),
        retained_by=pd.Series(retained_by, index=tags.index, dtype=object),
    )
