"""The release window (DESIGN section 7): hand-worked buckets and a property against a
brute-force oracle written here."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from acr_gc.cloud.oss import LifecycleRule
from acr_gc.rules.window import (
    BucketRule,
    Window,
    WindowError,
    bucket_rules,
    release_window,
    window_closed,
    window_end,
)

GC_DONE = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)


def rule(id, prefix, noncurrent=None, expiration=None, status="Enabled"):
    return BucketRule(id=id, prefix=prefix, status=status, expiration_days=expiration, noncurrent_days=noncurrent)


# -- BucketRule


def test_bucket_rule_from_the_adapter_rule_and_from_mappings():
    adapter = LifecycleRule(id="r1", prefix="docker/", status="Enabled", expiration_days=None, noncurrent_days=7)
    assert BucketRule.of(adapter) == rule("r1", "docker/", noncurrent=7)
    assert BucketRule.of(adapter).enabled
    assert BucketRule.from_oss(adapter) == BucketRule.of(adapter)
    # the emulator dataset's shape: no status, so Enabled
    assert BucketRule.of({"id": "d", "prefix": "", "expiration_days": 30, "noncurrent_days": None}) == rule(
        "d", "", expiration=30
    )
    assert BucketRule.of({"id": "x", "prefix": "a/", "status": "Disabled"}).enabled is False
    assert bucket_rules([adapter, rule("r2", "", 3)]) == (rule("r1", "docker/", 7), rule("r2", "", 3))
    assert bucket_rules(None) == ()


def test_adapter_rule_with_empty_status_is_not_enabled():
    adapter = LifecycleRule(id="r1", prefix="", status="", expiration_days=None, noncurrent_days=1)
    assert not BucketRule.of(adapter).enabled


@pytest.mark.parametrize("bad", [-1, "3", 1.5, True])
def test_bad_rule_days_are_refused(bad):
    with pytest.raises(WindowError):
        BucketRule.of({"id": "x", "prefix": "", "noncurrent_days": bad})


@pytest.mark.parametrize(
    "prefix,covers",
    [("", True), ("d", True), ("docker/", True), ("docker/registry/", False), ("docker/registry/v2/blobs/", False),
     ("other/", False), ("docker", True)],
)
def test_coverage_of_the_default_prefix(prefix, covers):
    assert rule("r", prefix, 1).covers("docker/") is covers


def test_coverage_of_a_narrower_registry_prefix():
    assert rule("r", "docker/registry/", 1).covers("docker/registry/v2/")
    assert not rule("r", "docker/registry/v2/blobs/", 1).covers("docker/registry/v2/")


# -- versioning off


@pytest.mark.parametrize("versioning", [None, ""])
def test_no_versioning_releases_at_once_plus_margin(versioning):
    w = release_window(versioning, [rule("exp", "", expiration=1), rule("nc", "docker/", noncurrent=30)], margin_days=2)
    assert w.days == 2 and not w.never_released
    assert "as soon as GC deletes" in w.reason


def test_no_versioning_with_no_rules_and_zero_margin():
    assert release_window(None, [], margin_days=0) == Window(0, False, release_window(None, [], margin_days=0).reason)


# -- versioning enabled / suspended


@pytest.mark.parametrize("versioning", ["Enabled", "Suspended", "enabled"])
def test_versioned_takes_the_smallest_covering_enabled_noncurrent_rule(versioning):
    rules = [
        rule("all", "", noncurrent=30),
        rule("docker", "docker/", noncurrent=10),
        rule("blobs-only", "docker/registry/v2/blobs/", noncurrent=1),  # partial: does not count
        rule("off", "docker/", noncurrent=2, status="Disabled"),       # disabled: does not count
        rule("other", "logs/", noncurrent=3),                           # elsewhere
        rule("exp", "", expiration=1),                                  # current objects only
    ]
    w = release_window(versioning, rules, margin_days=2)
    assert w.days == 12 and not w.never_released
    assert "docker" in w.reason and "10 day(s)" in w.reason


def test_versioned_root_rule_covers():
    assert release_window("Enabled", [rule("root", "", noncurrent=5)], margin_days=1).days == 6


def test_versioned_with_explicit_registry_prefix():
    rules = [rule("reg", "docker/registry/", noncurrent=4)]
    assert release_window("Enabled", rules, registry_prefix="docker/").never_released
    assert release_window("Enabled", rules, registry_prefix="docker/registry/v2/", margin_days=2).days == 6


@pytest.mark.parametrize(
    "rules",
    [
        [],
        [rule("exp", "", expiration=7)],
        [rule("blobs", "docker/registry/v2/blobs/", noncurrent=1)],
        [rule("off", "", noncurrent=1, status="Disabled")],
        [rule("other", "logs/", noncurrent=1)],
    ],
)
@pytest.mark.parametrize("versioning", ["Enabled", "Suspended"])
def test_versioned_without_a_covering_noncurrent_rule_never_releases(versioning, rules):
    w = release_window(versioning, rules)
    assert w.days is None and w.never_released
    # issue 12 (lifecycle filters): the reason now also names why each noncurrent rule does not count
    assert w.reason.startswith(
        f"versioning is {versioning.lower()} and no lifecycle rule expires noncurrent versions of every object "
        "under docker/"
    )
    assert w.reason.endswith("storage will never drop (never released)")
    for r in rules:
        assert (f"rule {r.id} does not" in w.reason) == (r.noncurrent_days is not None)
    assert "\n" not in w.reason
    assert window_end(GC_DONE, w) is None
    assert not window_closed(GC_DONE + timedelta(days=10_000), None)


def test_unknown_versioning_state_is_refused():
    with pytest.raises(WindowError):
        release_window("Sometimes", [])


@pytest.mark.parametrize("kwargs", [{"margin_days": -1}, {"window_days": -1}, {"margin_days": True}])
def test_bad_numbers_are_refused(kwargs):
    with pytest.raises(WindowError):
        release_window(None, [], **kwargs)


# -- the override


def test_override_wins_without_margin():
    w = release_window("Enabled", [rule("docker", "docker/", noncurrent=10)], margin_days=2, window_days=3)
    assert w.days == 3 and not w.never_released
    assert "window_days=3" in w.reason and "12 day(s)" in w.reason
    assert release_window(None, [], margin_days=5, window_days=0).days == 0


def test_override_on_a_bucket_that_never_releases_still_warns():
    w = release_window("Enabled", [], window_days=7)
    assert w.days == 7 and not w.never_released
    assert "warning" in w.reason and "storage will never drop" in w.reason


# -- end and closing


def test_window_end_and_closed():
    w = release_window("Enabled", [rule("r", "", noncurrent=3)], margin_days=2)
    end = window_end(GC_DONE, w)
    assert end == datetime(2024, 5, 6, 12, 0, tzinfo=timezone.utc)
    assert not window_closed(end - timedelta(seconds=1), end)
    assert window_closed(end, end)
    assert window_closed(end + timedelta(days=1), end)
    assert window_end(GC_DONE, Window(0, False, "")) == GC_DONE


# -- property against an oracle

_prefixes = st.sampled_from(["", "d", "docker", "docker/", "docker/registry/", "docker/registry/v2/blobs/", "logs/"])
_rules = st.lists(
    st.builds(rule, st.text(max_size=3), _prefixes, st.one_of(st.none(), st.integers(0, 60)),
              st.one_of(st.none(), st.integers(0, 60)), st.sampled_from(["Enabled", "Disabled"])),
    max_size=6,
)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([None, "Enabled", "Suspended"]), _rules, st.integers(0, 5),
       st.one_of(st.none(), st.integers(0, 90)))
def test_property_window_matches_oracle(versioning, rules, margin, override):
    w = release_window(versioning, rules, margin_days=margin, window_days=override)
    if override is not None:
        expected = override
    elif versioning is None:
        expected = margin
    else:
        covering_prefixes = ("", "d", "docker", "docker/")
        days = [r.noncurrent_days for r in rules
                if r.status == "Enabled" and r.noncurrent_days is not None and r.prefix in covering_prefixes]
        expected = min(days) + margin if days else None
    assert w.days == expected
    assert w.never_released is (expected is None)
    end = window_end(GC_DONE, w)
    assert (end is None) is (expected is None)
    if end is not None:
        assert window_closed(end, end) and not window_closed(end - timedelta(microseconds=1), end)


# -- lifecycle filters (issue 12): a rule releases the registry's data only if it is Enabled
#    and nothing in it can leave one of the registry's objects out


def filtered(**fields):
    return BucketRule(id="nc", prefix="docker/", status="Enabled", noncurrent_days=3, **fields)


@pytest.mark.parametrize(
    "r, words",
    [
        (BucketRule(id="nc", prefix="docker/", status="Disabled", noncurrent_days=3), "it is Disabled"),
        (filtered(tags=(("env", "prod"),)), "only on objects tagged env=prod"),
        (filtered(nots=(("docker/registry/v2/blobs/", ()),)), "Filter/Not leaves out objects under"),
        (filtered(nots=(("logs/", ()), ("docker/", (("keep", "1"),)))), "tagged keep=1"),  # the second Not
        (filtered(nots=(("", (("keep", "1"),)),)), "Filter/Not"),  # a Not over the whole bucket
        (filtered(object_size_greater_than=0), "> 0 bytes"),
        (filtered(object_size_less_than=5 * 2**40), "< 5497558138880 bytes"),
        (filtered(created_before_date="2026-01-01T00:00:00.000Z"), "created before 2026-01-01"),
    ],
)
def test_a_filter_that_can_exclude_registry_objects_never_releases(r, words):
    w = release_window("Enabled", [r], margin_days=2)
    assert w.never_released and w.days is None
    assert f"rule nc does not: " in w.reason and words in w.reason, w.reason


def test_a_not_filter_elsewhere_in_the_bucket_leaves_the_registry_covered():
    r = BucketRule(id="nc", prefix="", status="Enabled", noncurrent_days=4, nots=(("logs/", ()),))
    assert release_window("Enabled", [r], margin_days=2).days == 6


def test_a_plain_rule_beside_a_filtered_one_gives_its_window():
    rules = [filtered(tags=(("env", "prod"),)), BucketRule(id="plain", prefix="docker/", status="Enabled",
                                                            noncurrent_days=5)]
    w = release_window("Enabled", rules, margin_days=2)
    assert (w.days, w.never_released) == (7, False) and "plain" in w.reason


def test_filters_come_from_the_adapter_rule_and_the_dataset_shape():
    adapter = LifecycleRule(id="r", prefix="docker/", status="Enabled", expiration_days=None, noncurrent_days=2,
                            tags=(("a", "b"),), nots=(("docker/x/", (("k", "v"),)),),
                            object_size_greater_than=10, object_size_less_than=20,
                            created_before_date="2026-01-01T00:00:00.000Z")
    from_adapter = BucketRule.of(adapter)
    from_dataset = BucketRule.of({"id": "r", "prefix": "docker/", "noncurrent_days": 2, "tags": [{"key": "a", "value": "b"}],
                                  "not": {"prefix": "docker/x/", "tags": [{"key": "k", "value": "v"}]},
                                  "object_size_greater_than": 10, "object_size_less_than": 20,
                                  "created_before_date": "2026-01-01T00:00:00.000Z"})
    assert from_adapter == from_dataset
    assert from_adapter.tags == (("a", "b"),) and from_adapter.nots == (("docker/x/", (("k", "v"),)),)
