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
tag_regexp             str or None         keep tags whose name matches (full or partial
                                           match: a reading); missing or "": none by regexp
enable_delete_tag      bool                False: the rule deletes nothing and is ignored
=====================  ==================  ==============================================

Optional rule columns (missing column or value: the default in brackets):
``dry_run`` (bool) [False] -- the rule only scans: it deletes nothing and is ignored;
``policies`` (list of dicts in the API's shape: ``Type``, ``Condition``
{``LatestTagCount``, ``LastPushOlderThanDays``, ``LastPullOlderThanDays``}, ``Filter``
{``TagWildcard``}) [none]; ``auto`` (bool), ``schedule_time`` (str), ``next_time``
(datetime) and ``enable_delete_untagged_manifest`` (bool) -- described by
:func:`rule_table`, they do not change which tags a GC deletes.

Readings (DESIGN section 3): the vendor does not document three questions, so every
plausible answer is a :class:`Reading` and :func:`plan` evaluates all eight at once:
``combination`` (``any-retains``: a tag survives when some applying rule retains it;
``each-rule``: when every applying rule does), ``count_regexp`` (``count-or-match``: a
rule retains its N newest tags and every matching tag; ``count-among-matching``: its N
newest among the matching tags -- no regexp: among all; no count: every matching tag) and
``regexp_match`` (``full``: ``re.fullmatch``; ``partial``: ``re.search``).

Policies. Their ``Type`` and how they combine with the count and the regexp are not
documented, so a rule with policies is planned at both ends: at best it retains every
tag, at worst only the tags none of its policies could select (its count and regexp
retaining as usual). A policy could select a tag that matches its ``TagWildcard``
(``*`` any run of characters; none: every tag), is not among its ``LatestTagCount``
newest such tags, and was pushed more than ``LastPushOlderThanDays`` before ``now``
(unknown ``now``: any push time). Pull times are not in the API: ``LastPullOlderThanDays``
never excludes a tag. So a rule with policies never makes a tag ``certain``.

Output of :func:`plan`: the ``tags`` frame (same index, same row order) plus

* ``expired`` (bool) -- deleted under at least one of the planned readings (certain ∪
  possible): what the gate, ``deleted_tags.csv`` and verification cover;
* ``certainty`` (str) -- ``certain`` (deleted under every planned reading, whatever the
  policies mean), ``possible`` (under some), ``""`` (kept under all);
* ``retained_by`` (str) -- the ids of the applying rules that retain the tag under the
  first planned reading, joined with ``,`` in the order the rules appear in ``rules``;
  ``"no-rule"`` when no rule that deletes applies to the repository (every tag is kept);
* ``deleted_max``, ``deleted_min`` (uint8) -- per reading, whether it may / surely
  deletes the tag: bit ``i`` stands for ``ALL_READINGS[i]``, always for all eight
  readings (whichever were planned), so verification can tell afterwards which readings
  agree with the cloud (``acr_gc.rules.verification.readings_consistent``). They differ
  only where policies leave doubt.

How it stays fast at 10^6 rows: rows are sorted once by (repository, updated desc, tag
asc) so every repository is one contiguous block in rank order; the count rule of a
(rule, repository) pair is then the first ``k`` positions of that block, and each distinct
regexp is run once over the distinct tag strings of the repositories its rules apply to
(``re.search`` only over the strings ``fullmatch`` missed). The eight readings share that
work: each only counts, per row, how many applying rules retain it (``np.bincount``), and
compares with how many apply. Nothing loops over rows in Python (policy rules, which are
rare, loop over their repositories).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

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
OPTIONAL_RULE_COLUMNS = {
    "dry_run": False,
    "policies": None,
    "auto": None,
    "schedule_time": None,
    "next_time": None,
    "enable_delete_untagged_manifest": False,
}
SCOPES = ("INSTANCE", "NAMESPACE", "REPO")
NO_RULE = "no-rule"
CERTAIN, POSSIBLE = "certain", "possible"

COMBINATIONS = ("any-retains", "each-rule")
COUNT_REGEXP = ("count-or-match", "count-among-matching")
REGEXP_MATCH = ("full", "partial")


@dataclass(frozen=True)
class Reading:
    """One answer to each of the three undocumented questions (module docstring)."""

    combination: str = COMBINATIONS[0]
    count_regexp: str = COUNT_REGEXP[0]
    regexp_match: str = REGEXP_MATCH[0]

    def __post_init__(self) -> None:
        for field, value, allowed in (("combination", self.combination, COMBINATIONS),
                                      ("count_regexp", self.count_regexp, COUNT_REGEXP),
                                      ("regexp_match", self.regexp_match, REGEXP_MATCH)):
            if value not in allowed:
                raise ValueError(f"{field} must be one of {', '.join(allowed)}, found {value!r}")

    @property
    def name(self) -> str:
        """``combination/count_regexp/regexp_match``, as summary.json and the ledger write it."""
        return f"{self.combination}/{self.count_regexp}/{self.regexp_match}"

    @classmethod
    def from_name(cls, name: str) -> "Reading":
        parts = str(name).split("/")
        if len(parts) != 3:
            raise ValueError(f"a reading is written combination/count_regexp/regexp_match, found {name!r}")
        return cls(*parts)


ALL_READINGS: tuple[Reading, ...] = tuple(
    Reading(c, k, m) for c in COMBINATIONS for k in COUNT_REGEXP for m in REGEXP_MATCH
)
DEFAULT_READING = ALL_READINGS[0]
READING_BITS = {reading: 1 << i for i, reading in enumerate(ALL_READINGS)}


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
    dry_run: bool = False
    policies: tuple[dict, ...] = ()

    @property
    def deletes(self) -> bool:
        """Only enabled, non-dry-run rules delete tags; the others are ignored by the plan."""
        return self.enable_delete_tag and not self.dry_run

    def describe_scope(self) -> str:
        """The rule's scope the way an operator reads it in the console."""
        if self.scope == "NAMESPACE":
            return f"scope NAMESPACE {self.namespace}"
        if self.scope == "REPO":
            return f"scope REPO {self.namespace}/{self.repo or '*'}"
        return f"scope {self.scope}"


def parse_rules(rules: pd.DataFrame) -> list[LifecycleRule]:
    """Validate every rule row and return them in frame order.

    Rules are few (one per namespace or repository at most), so a plain loop is right
    here. A disabled rule deletes nothing, so only its shape is checked, not its regexp:
    an invalid regexp in a rule that can never run must not stop a reclamation.
    """
    require_columns(rules, RULE_COLUMNS, "rules")
    rules = rules.assign(**{c: default for c, default in OPTIONAL_RULE_COLUMNS.items() if c not in rules.columns})
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
        # REPO scope without RepoName: every repository of the namespace (console docs).

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
        dry_run = False if _is_missing(row.dry_run) else row.dry_run
        if not isinstance(dry_run, (bool, np.bool_)):
            raise RuleError(f"{where}: dry_run must be true or false, found {dry_run!r}")
        policies = () if _is_missing(row.policies) else row.policies
        if not isinstance(policies, (list, tuple)) or not all(isinstance(p, dict) for p in policies):
            raise RuleError(f"{where}: policies must be a list of objects, found {policies!r}")
        rule = LifecycleRule(rule_id, scope, namespace, repo, count, regexp, bool(enable), bool(dry_run),
                             tuple(policies))
        for policy in rule.policies:
            _check_policy(policy, where)
        if rule.deletes and regexp is not None:
            try:
                re.compile(regexp)
            except re.error as exc:
                raise RuleError(
                    f"lifecycle rule {rule_id} ({rule.describe_scope()}): invalid TagRegexp {regexp!r}: {exc}"
                ) from None
        parsed.append(rule)
    return parsed


def _policy_int(policy: dict, key: str) -> int | None:
    value = (policy.get("Condition") or {}).get(key)
    return None if value is None or value == "" else int(value)


def _check_policy(policy: dict, where: str) -> None:
    """A policy the planner can read: its conditions whole numbers, its wildcard text."""
    for key in ("LatestTagCount", "LastPushOlderThanDays", "LastPullOlderThanDays"):
        try:
            value = _policy_int(policy, key)
        except (TypeError, ValueError):
            value = -1
        if value is not None and value < 0:
            raise RuleError(f"{where}: policy condition {key} must be a whole number, found "
                            f"{(policy.get('Condition') or {}).get(key)!r}")
    wildcard = (policy.get("Filter") or {}).get("TagWildcard")
    if wildcard is not None and not isinstance(wildcard, str):
        raise RuleError(f"{where}: policy filter TagWildcard must be text, found {wildcard!r}")


def _wildcard(pattern: str | None) -> re.Pattern[str] | None:
    if pattern in (None, "", "*"):
        return None
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")), re.DOTALL)


def _policy_selectable(policies: tuple[dict, ...], names: np.ndarray, update_keys: np.ndarray,
                       now_ns: int | None) -> np.ndarray:
    """Which tags of one repository block (newest first) some policy could select (module docstring)."""
    selectable = np.zeros(len(names), dtype=bool)
    for policy in policies:
        pattern = _wildcard((policy.get("Filter") or {}).get("TagWildcard"))
        chosen = (np.ones(len(names), dtype=bool) if pattern is None
                  else np.fromiter((pattern.fullmatch(n) is not None for n in names), dtype=bool, count=len(names)))
        latest = _policy_int(policy, "LatestTagCount")
        if latest is not None:
            chosen &= (np.cumsum(chosen) > latest)
        push_days = _policy_int(policy, "LastPushOlderThanDays")
        if push_days is not None and now_ns is not None:
            chosen &= update_keys < now_ns - push_days * 86_400 * 10**9
        selectable |= chosen
    return selectable


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
    named = repo_rules[repo_rules["repo"].notna()]
    if len(named):
        joined = named.merge(repositories, on=["namespace", "repo"])
        parts_rule.append(joined["rule"].to_numpy())
        parts_repo.append(joined["repo_code"].to_numpy())
    unnamed = repo_rules.loc[repo_rules["repo"].isna(), ["rule", "namespace"]]
    if len(unnamed):  # REPO without RepoName: every repository of the namespace
        joined = unnamed.merge(repositories[["repo_code", "namespace"]], on="namespace")
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


def _segment_first(segment: np.ndarray, n_segments: int) -> np.ndarray:
    """Index of each segment's first element in an array of contiguous segments."""
    sizes = np.bincount(segment, minlength=n_segments)
    return np.cumsum(sizes) - sizes


def _readings_or_default(readings) -> tuple[Reading, ...]:
    chosen = tuple(readings) if readings is not None else ALL_READINGS
    if not chosen:
        raise ValueError("plan needs at least one reading")
    return chosen


def plan(
    tags: pd.DataFrame,
    rules: pd.DataFrame,
    readings: tuple[Reading, ...] | list[Reading] | None = (DEFAULT_READING,),
    now: datetime | None = None,
) -> pd.DataFrame:
    """Mark every tag expired or kept under ``readings`` (``None``: all eight), by DESIGN section 3.

    Returns ``tags`` with ``expired``, ``certainty``, ``retained_by``, ``deleted_max`` and
    ``deleted_min`` added (see the module docstring); ``now`` (the planned GC time) lets
    policies' ``LastPushOlderThanDays`` exclude recent tags. Raises :class:`RuleError` for
    a rule that cannot be evaluated (e.g. an invalid TagRegexp) and
    :class:`FrameContractError` for frames that break their contract.
    """
    require_columns(tags, TAG_COLUMNS, "tags")
    chosen = _readings_or_default(readings)
    active = [rule for rule in parse_rules(rules) if rule.deletes]
    n_rows = len(tags)
    if n_rows == 0:
        return tags.assign(
            expired=pd.Series(dtype=bool),
            certainty=pd.Series(dtype=object),
            retained_by=pd.Series(dtype=object),
            deleted_max=pd.Series(dtype="uint8"),
            deleted_min=pd.Series(dtype="uint8"),
        )

    repo_codes, repositories = _repository_codes(tags)
    update_keys = _update_keys(tags["updated"])
    # sort=True makes tag codes follow string order, so ties sort by tag name ascending.
    tag_codes, tag_names = pd.factorize(tags["tag"], sort=True)
    tag_name_values = np.asarray(tag_names, dtype=object)
    order = np.lexsort((tag_codes, -update_keys, repo_codes))
    sorted_repo = repo_codes[order]
    sorted_tag_code = tag_codes[order]
    repo_sizes = np.bincount(repo_codes, minlength=len(repositories))
    repo_starts = np.cumsum(repo_sizes) - repo_sizes  # block of repo r in sorted order

    pair_rule, pair_repo = _applicable_pairs(active, repositories)
    n_applying = np.bincount(pair_repo, minlength=len(repositories))[sorted_repo]
    sorted_applies = n_applying > 0

    n_rules = max(len(active), 1)
    counts = np.array([-1 if r.retention_tag_count is None else r.retention_tag_count for r in active],
                      dtype=np.int64)
    has_regexp = np.array([r.tag_regexp is not None for r in active], dtype=bool)
    has_policy = np.array([bool(r.policies) for r in active], dtype=bool)
    plain = ~has_policy[pair_rule] if len(active) else np.zeros(0, dtype=bool)

    # Count part of plain rules: the first k positions of the repository's block.
    by_count = plain & (counts[pair_rule] > 0) if len(active) else plain
    c_rule, c_repo = pair_rule[by_count], pair_repo[by_count]
    c_pos, c_seg = _expand_ranges(repo_starts[c_repo], np.minimum(counts[c_rule], repo_sizes[c_repo]))
    c_rule_of = c_rule[c_seg]
    # Rules without a regexp count the same way under both count_regexp readings.
    c_norx = ~has_regexp[c_rule_of]

    # Regexp part of plain rules: each distinct pattern once, over the distinct tags it can see.
    by_regexp = plain & has_regexp[pair_rule] if len(active) else plain
    r_rule, r_repo = pair_rule[by_regexp], pair_repo[by_regexp]
    patterns = [r.tag_regexp for r in active]
    pattern_codes, pattern_texts = pd.factorize(pd.Series(patterns, dtype=object))
    r_pattern = pattern_codes[r_rule] if len(r_rule) else np.zeros(0, dtype=np.int64)
    grouped = np.argsort(r_pattern, kind="stable")
    r_rule, r_repo, r_pattern = r_rule[grouped], r_repo[grouped], r_pattern[grouped]
    r_pos, r_seg = _expand_ranges(repo_starts[r_repo], repo_sizes[r_repo])
    r_rank = r_pos - repo_starts[r_repo][r_seg]
    r_rule_of = r_rule[r_seg]
    full = np.zeros(len(r_pos), dtype=bool)
    partial = np.zeros(len(r_pos), dtype=bool)
    seg_pattern = r_pattern[r_seg]
    bounds = np.searchsorted(seg_pattern, np.arange(len(pattern_texts) + 1))
    for code in range(len(pattern_texts)):
        lo, hi = bounds[code], bounds[code + 1]
        if lo == hi:
            continue
        compiled = re.compile(pattern_texts[code])
        distinct, inverse = np.unique(sorted_tag_code[r_pos[lo:hi]], return_inverse=True)
        names = tag_name_values[distinct]
        hits_full = np.fromiter((compiled.fullmatch(n) is not None for n in names), dtype=bool, count=len(names))
        hits_part = hits_full.copy()
        missed = np.flatnonzero(~hits_full)
        hits_part[missed] = np.fromiter((compiled.search(n) is not None for n in names[missed]), dtype=bool,
                                        count=len(missed))
        inverse = inverse.reshape(-1)
        full[lo:hi] = hits_full[inverse]
        partial[lo:hi] = hits_part[inverse]
    r_count = counts[r_rule_of]
    r_seg_first = _segment_first(r_seg, len(r_rule))

    def regexp_retains(count_regexp: str, matched: np.ndarray) -> np.ndarray:
        """Per regexp pair position: does its rule retain it (apart from the count part)?"""
        if count_regexp == "count-or-match":
            return matched & ~(r_rank < r_count)  # the count part already counts the others
        running = np.cumsum(matched)
        before = np.where(r_seg_first > 0, running[np.maximum(r_seg_first - 1, 0)], 0)
        among = running - before[r_seg] - 1  # rank among the segment's matching tags
        return matched & ((r_count < 0) | (among < r_count))

    variants = [(k, m) for k in COUNT_REGEXP for m in REGEXP_MATCH]
    n_ret: dict[tuple[str, str], np.ndarray] = {}
    count_all = np.bincount(c_pos, minlength=n_rows)
    count_norx = np.bincount(c_pos[c_norx], minlength=n_rows)
    for k, m in variants:
        matched = full if m == "full" else partial
        base = count_all if k == "count-or-match" else count_norx
        n_ret[(k, m)] = base + np.bincount(r_pos[regexp_retains(k, matched)], minlength=n_rows)

    # Policy rules (rare): per repository block, worst case = retains only what no policy
    # could select; best case = retains everything.
    first = chosen[0]
    extra_pos: list[np.ndarray] = []
    extra_rule: list[np.ndarray] = []
    n_ret_best = None
    if has_policy.any():
        n_ret_best = {key: value.copy() for key, value in n_ret.items()}
        now_ns = None if now is None else pd.Timestamp(now).as_unit("ns").value
        sorted_update = update_keys[order]
        for rule_index, repo in zip(pair_rule[~plain].tolist(), pair_repo[~plain].tolist()):
            rule = active[rule_index]
            lo, size = int(repo_starts[repo]), int(repo_sizes[repo])
            block = np.arange(lo, lo + size)
            names = tag_name_values[sorted_tag_code[block]]
            selectable = _policy_selectable(rule.policies, names, sorted_update[block], now_ns)
            ranks = np.arange(size)
            for k, m in variants:
                if rule.retention_tag_count is None and rule.tag_regexp is None:
                    kept = np.ones(size, dtype=bool)
                else:
                    compiled = re.compile(rule.tag_regexp) if rule.tag_regexp is not None else None
                    match = (np.ones(size, dtype=bool) if compiled is None else np.fromiter(
                        ((compiled.fullmatch if m == "full" else compiled.search)(n) is not None for n in names),
                        dtype=bool, count=size))
                    count = rule.retention_tag_count
                    if k == "count-or-match":
                        kept = (ranks < (count or 0)) | (match & (compiled is not None))
                    else:
                        kept = match & ((count is None) | (np.cumsum(match) <= (count or 0)))
                worst = kept & ~selectable
                n_ret[(k, m)][block[worst]] += 1
                n_ret_best[(k, m)][block] += 1
                if (k, m) == (first.count_regexp, first.regexp_match):
                    extra_pos.append(block[worst])
                    extra_rule.append(np.full(int(worst.sum()), rule_index, dtype=np.int64))

    def deleted(reading: Reading, retained_counts: dict) -> np.ndarray:
        kept = retained_counts[(reading.count_regexp, reading.regexp_match)]
        if reading.combination == "any-retains":
            return sorted_applies & (kept == 0)
        return sorted_applies & (kept < n_applying)

    sorted_max = np.zeros(n_rows, dtype=np.uint8)
    sorted_min = np.zeros(n_rows, dtype=np.uint8)
    for reading in ALL_READINGS:
        bit = np.uint8(READING_BITS[reading])
        worst = deleted(reading, n_ret)
        sorted_max[worst] |= bit
        best = worst if n_ret_best is None else deleted(reading, n_ret_best)
        sorted_min[best] |= bit
    chosen_bits = np.uint8(sum(READING_BITS[r] for r in chosen))
    sorted_expired = (sorted_max & chosen_bits) != 0
    sorted_certain = (sorted_min & chosen_bits) == chosen_bits
    sorted_certainty = np.where(sorted_certain, CERTAIN, np.where(sorted_expired, POSSIBLE, "")).astype(object)

    # retained_by under the first planned reading: (row, rule) pairs, deduplicated.
    matched_first = full if first.regexp_match == "full" else partial
    keep_c = np.ones(len(c_pos), dtype=bool) if first.count_regexp == "count-or-match" else c_norx
    keep_r = (matched_first if first.count_regexp == "count-or-match"
              else regexp_retains(first.count_regexp, matched_first))
    all_pos = np.concatenate([c_pos[keep_c], r_pos[keep_r], *extra_pos])
    all_rule = np.concatenate([c_rule_of[keep_c], r_rule_of[keep_r], *extra_rule])
    pair_keys = np.unique(all_pos * n_rules + all_rule)
    rule_ids = np.array([r.rule_id for r in active], dtype=object)
    sorted_labels = _retained_by_labels(pair_keys // n_rules, pair_keys % n_rules, rule_ids, n_rows)
    sorted_labels[~sorted_applies] = NO_RULE

    def unsort(values: np.ndarray, dtype) -> np.ndarray:
        out = np.empty(n_rows, dtype=dtype)
        out[order] = values
        return out

    return tags.assign(
        expired=pd.Series(unsort(sorted_expired, bool), index=tags.index),
        certainty=pd.Series(unsort(sorted_certainty, object), index=tags.index, dtype=object),
        retained_by=pd.Series(unsort(sorted_labels, object), index=tags.index, dtype=object),
        deleted_max=pd.Series(unsort(sorted_max, np.uint8), index=tags.index),
        deleted_min=pd.Series(unsort(sorted_min, np.uint8), index=tags.index),
    )


def _runs_before(auto: bool, next_time: pd.Timestamp | None, gc_at: datetime | None) -> bool:
    """An ``Auto`` rule runs by itself before ``gc_at`` unless its ``NextTime`` is known to come later."""
    return bool(auto and (gc_at is None or next_time is None or next_time <= pd.Timestamp(gc_at)))


def running_by_themselves(table: pd.DataFrame, gc_at: datetime | None) -> pd.DataFrame:
    """The rows of a :func:`rule_table` (as kept for the report) whose rule deletes tags by
    itself before GC started at ``gc_at`` (None: GC never started, every Auto rule counts):
    the report names them, since acr-gc can only verify their deletions afterwards."""
    if not len(table):
        return table
    next_times = pd.to_datetime(table["next_time"], utc=True)
    keep = [
        effect == "deletes tags" and _runs_before(bool(auto), None if pd.isna(when) else when, gc_at)
        for auto, effect, when in zip(table["auto"], table["effect"], next_times)
    ]
    return table[keep].reset_index(drop=True)


def rule_table(rules: pd.DataFrame, gc_at: datetime | None = None) -> pd.DataFrame:
    """The rules as the plan reads them, one row each, for the plan's artifact and report.

    ``effect``: ``deletes tags`` | ``dry-run (deletes nothing)`` | ``disabled``;
    ``policies``: how many (their tags are at best ``possible``); ``runs_by_itself``: an
    ``Auto`` rule whose ``NextTime`` comes before ``gc_at`` (or any Auto rule when
    ``gc_at`` is unknown) deletes tags by itself, outside acr-gc's gate: acr-gc can only
    verify afterwards. ``untagged_manifests``: EnableDeleteUntaggedManifest.
    """
    parsed = parse_rules(rules)
    full = rules.assign(**{c: default for c, default in OPTIONAL_RULE_COLUMNS.items() if c not in rules.columns})
    rows = []
    for rule, raw in zip(parsed, full.itertuples(index=False)):
        auto = not _is_missing(raw.auto) and bool(raw.auto)
        next_time = None if _is_missing(raw.next_time) else pd.Timestamp(raw.next_time)
        if next_time is not None and next_time.tzinfo is None:
            next_time = next_time.tz_localize("UTC")
        by_itself = _runs_before(auto, next_time, gc_at)
        rows.append({
            "rule_id": rule.rule_id,
            "scope": rule.describe_scope(),
            "retention_tag_count": rule.retention_tag_count,
            "tag_regexp": rule.tag_regexp,
            "effect": "disabled" if not rule.enable_delete_tag else
                      "dry-run (deletes nothing)" if rule.dry_run else "deletes tags",
            "policies": len(rule.policies),
            "auto": auto,
            "next_time": None if next_time is None else next_time.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "runs_by_itself": bool(by_itself and rule.deletes),
            "untagged_manifests": not _is_missing(raw.enable_delete_untagged_manifest)
                                  and bool(raw.enable_delete_untagged_manifest),
        })
    columns = ["rule_id", "scope", "retention_tag_count", "tag_regexp", "effect", "policies", "auto",
               "next_time", "runs_by_itself", "untagged_manifests"]
    table = pd.DataFrame(rows, columns=columns)
    return table.astype({"next_time": object, "tag_regexp": object}).where(table.notna(), None)
