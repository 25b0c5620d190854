"""Which object versions an OSS lifecycle rule acts on (the emulated OSS's own reading).

Modelled on OSS's lifecycle configuration elements: a rule acts only while its
``Status`` is Enabled, on keys under its ``Prefix``; rule-level ``Tag`` elements limit it
to objects carrying every one of them (key and value equal); ``Filter/Not`` leaves out
the keys under its prefix that also carry its tag(s) (all of them under the prefix when
it names no tag); ``Filter/ObjectSizeGreaterThan`` / ``ObjectSizeLessThan`` are strict
bounds on the version's size. ``Expiration/CreatedBeforeDate`` is the date form of
expiration and concerns current objects only; it does not limit the rule's
``NoncurrentVersionExpiration``.

Emulator objects carry no tags unless the dataset gives them (``extra_objects[].tags``):
the registry's objects never do, so a rule with a Tag filter never releases them.
This module is the emulator's, apart from the product's reading in ``acr_gc.rules``.
"""

from __future__ import annotations

from collections.abc import Mapping

from acr_gc.emulator import dataset as ds


def enabled(rule: ds.BucketLifecycleRule) -> bool:
    return rule.status == "Enabled"


def _has_tags(tags: Mapping[str, str] | None, wanted: list[ds.ObjectTag]) -> bool:
    have = tags or {}
    return all(have.get(t.key) == t.value for t in wanted)


def acts_on(rule: ds.BucketLifecycleRule, key: str, size: int, tags: Mapping[str, str] | None) -> bool:
    """True when ``rule`` (enabled or not) selects an object version with this key, size and tags."""
    if not key.startswith(rule.prefix):
        return False
    if rule.tags and not _has_tags(tags, rule.tags):
        return False
    if rule.not_ is not None and key.startswith(rule.not_.prefix) and _has_tags(tags, rule.not_.tags):
        return False
    if rule.object_size_greater_than is not None and not size > rule.object_size_greater_than:
        return False
    if rule.object_size_less_than is not None and not size < rule.object_size_less_than:
        return False
    return True
