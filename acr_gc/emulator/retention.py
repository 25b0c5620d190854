"""The emulator's own reading of DESIGN section 3: which tags a GC task deletes.

Deliberately written apart from the planner (no shared code), so that the planner's
prediction and the emulator's GC can check each other in end-to-end tests.
"""

from __future__ import annotations

import re
from typing import Iterable, Sequence

from acr_gc.emulator.registry import LifecycleRuleRecord, RepoRecord, TagRecord


def rule_applies(rule: LifecycleRuleRecord, namespace: str, repo: str) -> bool:
    """Scope match; rules that delete nothing (EnableDeleteTag false) never apply."""
    if not rule.enable_delete_tag:
        return False
    if rule.scope == "INSTANCE":
        return True
    if rule.scope == "NAMESPACE":
        return rule.namespace == namespace
    if rule.scope == "REPO":
        return rule.namespace == namespace and rule.repo == repo
    return False


def _retained_by(rule: LifecycleRuleRecord, ordered: Sequence[TagRecord]) -> set[str]:
    keep: set[str] = set()
    if rule.retention_tag_count:
        keep.update(t.tag for t in ordered[: rule.retention_tag_count])
    if rule.tag_regexp is not None:
        pattern = re.compile(rule.tag_regexp)
        keep.update(t.tag for t in ordered if pattern.fullmatch(t.tag))
    return keep


def expired_tags(repo: RepoRecord, rules: Iterable[LifecycleRuleRecord]) -> list[TagRecord]:
    """The repository's expired tags, in its newest-first order.

    Expired: at least one rule applies and no applying rule retains the tag. A repository
    with no applying rule keeps every tag.
    """
    applying = [r for r in rules if rule_applies(r, repo.namespace, repo.name)]
    if not applying:
        return []
    ordered = repo.ordered()
    keep: set[str] = set()
    for rule in applying:
        keep |= _retained_by(rule, ordered)
    return [t for t in ordered if t.tag not in keep]
