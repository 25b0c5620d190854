"""The emulator's own reading of DESIGN section 3: which tags a GC task deletes.

Deliberately written apart from the planner (no shared code), so that the planner's
prediction and the emulator's GC can check each other in end-to-end tests.

The vendor leaves three questions open, so the emulator plays whichever answer it is
told to (``Readings``; ``acr-gc emulator serve --combination … --count-regexp …
--regexp-match …``, or ``POST /_emulator/readings``); its defaults are one choice, not
the truth:

* ``combination``: ``any-retains`` -- the applying rules' retained sets are united;
  ``each-rule`` -- every rule runs on its own, so only what all of them retain survives;
* ``count_regexp``: ``count-or-match`` -- a rule keeps its N newest tags plus every
  matching tag; ``count-among-matching`` -- it keeps the N newest of the matching tags
  (no regexp: of all tags; no count: every matching tag);
* ``regexp_match``: ``full`` (``re.fullmatch``) or ``partial`` (``re.search``).

Policies, as this emulator plays them (the real meaning is undocumented): a policy
selects the tags that match its ``Filter.TagWildcard`` (``*`` = any run), are not among
its ``Condition.LatestTagCount`` newest such tags, were pushed more than
``LastPushOlderThanDays`` ago and last pulled more than ``LastPullOlderThanDays`` ago (the
emulator records no pulls: a tag's last pull is its push); the rule then retains what its
count/regexp retain (everything when it has neither) minus what its policies select.
DryRun rules and rules with EnableDeleteTag false delete nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Iterable, Sequence

from acr_gc.emulator.registry import LifecycleRuleRecord, RepoRecord, TagRecord, epoch_ms

COMBINATION = ("any-retains", "each-rule")
COUNT_REGEXP = ("count-or-match", "count-among-matching")
REGEXP_MATCH = ("full", "partial")


@dataclass(frozen=True)
class Readings:
    combination: str = COMBINATION[0]
    count_regexp: str = COUNT_REGEXP[0]
    regexp_match: str = REGEXP_MATCH[0]

    def __post_init__(self) -> None:
        for name, value, allowed in (("combination", self.combination, COMBINATION),
                                     ("count_regexp", self.count_regexp, COUNT_REGEXP),
                                     ("regexp_match", self.regexp_match, REGEXP_MATCH)):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}, found {value!r}")

    def as_dict(self) -> dict:
        return {"combination": self.combination, "count_regexp": self.count_regexp,
                "regexp_match": self.regexp_match}


def rule_applies(rule: LifecycleRuleRecord, namespace: str, repo: str) -> bool:
    """Scope match (REPO without a repository name: the whole namespace); rules that
    delete nothing (EnableDeleteTag false, DryRun) never apply."""
    if not rule.enable_delete_tag or rule.dry_run:
        return False
    if rule.scope == "INSTANCE":
        return True
    if rule.scope == "NAMESPACE":
        return rule.namespace == namespace
    if rule.scope == "REPO":
        return rule.namespace == namespace and (not rule.repo or rule.repo == repo)
    return False


def _wildcard_matches(pattern: str | None, tag: str) -> bool:
    if not pattern:
        return True
    return re.fullmatch(".*".join(map(re.escape, pattern.split("*"))), tag, re.DOTALL) is not None


def _selected_by_policies(rule: LifecycleRuleRecord, ordered: Sequence[TagRecord], now: datetime) -> set[str]:
    selected: set[str] = set()
    now_ms = epoch_ms(now)
    for policy in rule.policies:
        condition = policy.get("Condition") or {}
        filtered = [t for t in ordered if _wildcard_matches((policy.get("Filter") or {}).get("TagWildcard"), t.tag)]
        latest = condition.get("LatestTagCount")
        if latest is not None:
            filtered = filtered[int(latest):]
        for key in ("LastPushOlderThanDays", "LastPullOlderThanDays"):  # no pulls recorded: last pull = push
            days = condition.get(key)
            if days is not None:
                limit = now_ms - int(timedelta(days=int(days)).total_seconds() * 1000)
                filtered = [t for t in filtered if t.updated_ms < limit]
        selected.update(t.tag for t in filtered)
    return selected


def _retained_by(rule: LifecycleRuleRecord, ordered: Sequence[TagRecord], readings: Readings,
                 now: datetime) -> set[str]:
    pattern = re.compile(rule.tag_regexp) if rule.tag_regexp is not None else None

    def matches(tag: str) -> bool:
        if pattern is None:
            return False
        found = pattern.fullmatch(tag) if readings.regexp_match == "full" else pattern.search(tag)
        return found is not None

    keep: set[str] = set()
    if rule.policies and rule.retention_tag_count is None and pattern is None:
        keep = {t.tag for t in ordered}
    elif readings.count_regexp == "count-or-match":
        if rule.retention_tag_count:
            keep.update(t.tag for t in ordered[: rule.retention_tag_count])
        keep.update(t.tag for t in ordered if matches(t.tag))
    else:
        among = list(ordered) if pattern is None else [t for t in ordered if matches(t.tag)]
        limit = rule.retention_tag_count
        if pattern is None:
            limit = limit or 0
        keep.update(t.tag for t in (among if limit is None else among[:limit]))
    if rule.policies:
        keep -= _selected_by_policies(rule, ordered, now)
    return keep


def expired_tags(repo: RepoRecord, rules: Iterable[LifecycleRuleRecord], readings: Readings = Readings(),
                 now: datetime | None = None) -> list[TagRecord]:
    """The repository's expired tags, in its newest-first order, under ``readings``.

    A repository with no applying rule keeps every tag. ``now`` (the emulated clock) is
    needed only by policies' age conditions.
    """
    applying = [r for r in rules if rule_applies(r, repo.namespace, repo.name)]
    if not applying:
        return []
    ordered = repo.ordered()
    now = now or datetime.now().astimezone()
    kept_sets = [_retained_by(rule, ordered, readings, now) for rule in applying]
    if readings.combination == "any-retains":
        keep = set().union(*kept_sets)
    else:
        keep = set.intersection(*kept_sets)
    return [t for t in ordered if t.tag not in keep]


def expired_by_one_rule(repo: RepoRecord, rule: LifecycleRuleRecord, rules: Iterable[LifecycleRuleRecord],
                        readings: Readings, now: datetime) -> list[TagRecord]:
    """What an automatic run of ``rule`` alone deletes in ``repo``: the tags it does not
    retain -- and, when rules combine by ``any-retains``, that no other applying rule retains."""
    if not rule_applies(rule, repo.namespace, repo.name):
        return []
    ordered = repo.ordered()
    keep = _retained_by(rule, ordered, readings, now)
    if readings.combination == "any-retains":
        for other in rules:
            if other is not rule and rule_applies(other, repo.namespace, repo.name):
                keep |= _retained_by(other, ordered, readings, now)
    return [t for t in ordered if t.tag not in keep]
