"""Unit tests of the OSS storage backend; every expected number is worked out by hand."""

from __future__ import annotations

import json

from datetime import datetime, timedelta, timezone

import pytest

from acr_gc.emulator import dataset as ds
from acr_gc.emulator.storage import Bucket, NoSuchBucket, NoSuchKey, Storage

T0 = datetime(2024, 3, 1, tzinfo=timezone.utc)


def day(n: float) -> datetime:
    return T0 + timedelta(days=n)


def rule(**kw) -> ds.BucketLifecycleRule:
    return ds.BucketLifecycleRule(id=kw.pop("id", "r"), **kw)


def stat_tuple(b: Bucket):
    s = b.stat()
    return s.live_bytes, s.noncurrent_bytes, s.live_objects, s.noncurrent_objects, s.storage_bytes, s.object_count


# ---- versioning off ---------------------------------------------------------------------


def test_unversioned_overwrite_replaces_and_delete_removes():
    b = Bucket("b", T0)
    b.put_object("k", day(0), data=b"12345")
    b.put_object("k", day(1), data=b"123")  # overwrite: the 5 bytes are gone
    assert stat_tuple(b) == (3, 0, 1, 0, 3, 1)
    assert b.get_object("k").content == b"123"
    assert [v.version_id for v in b.all_versions()] == ["null"]
    assert b.delete_object("k", day(2)) is None  # no marker without versioning
    assert stat_tuple(b) == (0, 0, 0, 0, 0, 0)
    assert b.current_keys() == []
    with pytest.raises(NoSuchKey):
        b.get_object("k")
    # deleting a missing key is not an error
    assert b.delete_object("missing", day(2)) is None


def test_synthetic_content_is_size_zero_bytes():
    b = Bucket("b", T0)
    v = b.put_object("blob", day(0), size=7)
    assert v.size == 7 and v.content == bytes(7)
    assert stat_tuple(b) == (7, 0, 1, 0, 7, 1)


# ---- versioning Enabled -----------------------------------------------------------------


def test_enabled_keeps_old_versions_as_noncurrent_and_counts_them():
    b = Bucket("b", T0, versioning="Enabled")
    v1 = b.put_object("k", day(0), data=b"aaaaaaaaaa")  # 10 bytes
    v2 = b.put_object("k", day(1), data=b"bbbb")  # 4 bytes, current
    assert v1.version_id != v2.version_id and "null" not in (v1.version_id, v2.version_id)
    # live 4, noncurrent 10; storage 14 bytes in 2 versions
    assert stat_tuple(b) == (4, 10, 1, 1, 14, 2)
    assert v1.noncurrent_since == day(1) and v2.noncurrent_since is None
    assert b.get_object("k").content == b"bbbb"
    assert b.get_object("k", v1.version_id).content == b"aaaaaaaaaa"
    assert b.is_latest(v2) and not b.is_latest(v1)


def test_enabled_delete_adds_marker_and_everything_stays_billed():
    b = Bucket("b", T0, versioning="Enabled")
    v1 = b.put_object("k", day(0), data=b"123456")
    marker = b.delete_object("k", day(2))
    assert marker is not None and marker.delete_marker and marker.size == 0
    assert b.current("k") is None and b.current_keys() == []
    # the 6 bytes are noncurrent now; the marker is not an object and has no bytes
    assert stat_tuple(b) == (0, 6, 0, 1, 6, 1)
    assert v1.noncurrent_since == day(2)
    assert [(v.version_id, v.delete_marker) for v in b.all_versions()] == [
        (marker.version_id, True),
        (v1.version_id, False),
    ]
    assert b.is_latest(marker)
    with pytest.raises(NoSuchKey):
        b.get_object("k")
    with pytest.raises(NoSuchKey):
        b.get_object("k", marker.version_id)  # a marker has no content
    # a second delete while the marker is current adds nothing
    assert b.delete_object("k", day(3)) is None
    assert len(b.versions("k")) == 2


def test_enabled_delete_by_version_id_is_permanent_and_restores_previous():
    b = Bucket("b", T0, versioning="Enabled")
    v1 = b.put_object("k", day(0), data=b"1")
    v2 = b.put_object("k", day(1), data=b"22")
    # removing the current version makes v1 current again (no longer noncurrent)
    assert b.delete_object("k", day(2), version_id=v2.version_id) is None
    assert b.get_object("k").version_id == v1.version_id
    assert v1.noncurrent_since is None
    assert stat_tuple(b) == (1, 0, 1, 0, 1, 1)
    # removing a delete marker by id "undeletes"
    marker = b.delete_object("k", day(3))
    assert b.current("k") is None
    b.delete_object("k", day(4), version_id=marker.version_id)
    assert b.current("k").version_id == v1.version_id
    # removing the last version removes the key
    b.delete_object("k", day(5), version_id=v1.version_id)
    assert b.versions("k") == [] and b.all_versions() == []
    # unknown version ids and keys are ignored
    assert b.delete_object("k", day(5), version_id="nope") is None


# ---- versioning Suspended ---------------------------------------------------------------


def test_suspended_overwrites_null_version_but_keeps_older_versions():
    b = Bucket("b", T0, versioning="Enabled")
    v1 = b.put_object("k", day(0), data=b"1111")  # 4 bytes, real version id
    b.versioning = "Suspended"
    n1 = b.put_object("k", day(1), data=b"22")  # "null" version, v1 noncurrent
    assert n1.version_id == "null"
    assert stat_tuple(b) == (2, 4, 1, 1, 6, 2)
    n2 = b.put_object("k", day(2), data=b"333")  # replaces the null version: 2 bytes gone
    assert n2.version_id == "null"
    assert stat_tuple(b) == (3, 4, 1, 1, 7, 2)
    assert [v.version_id for v in b.all_versions()] == ["null", v1.version_id]
    # delete in a suspended bucket: a "null" delete marker replaces the null version
    marker = b.delete_object("k", day(3))
    assert marker is not None and marker.version_id == "null" and marker.delete_marker
    assert stat_tuple(b) == (0, 4, 0, 1, 4, 1)
    assert [v.version_id for v in b.all_versions()] == ["null", v1.version_id]


# ---- lifecycle --------------------------------------------------------------------------


def test_noncurrent_expiry_after_n_days():
    b = Bucket("b", T0, versioning="Enabled", lifecycle=[rule(noncurrent_days=3)])
    b.put_object("k", day(0), data=b"x" * 100)
    b.put_object("k", day(1), data=b"y" * 40)  # the 100 bytes are noncurrent since day 1
    b.put_object("other", day(0), data=b"z" * 7)
    b.apply_lifecycle(day(3.9))  # 2.9 days noncurrent: kept
    assert stat_tuple(b) == (47, 100, 2, 1, 147, 3)
    b.apply_lifecycle(day(4))  # exactly 3 days: released
    assert stat_tuple(b) == (47, 0, 2, 0, 47, 2)


def test_noncurrent_expiry_respects_prefix_and_removes_lone_markers():
    b = Bucket(
        "b", T0, versioning="Enabled", lifecycle=[rule(prefix="docker/", noncurrent_days=2)]
    )
    b.put_object("docker/blob", day(0), size=1000)
    b.put_object("keep/blob", day(0), size=10)
    b.delete_object("docker/blob", day(1))  # 1000 bytes noncurrent since day 1
    b.delete_object("keep/blob", day(1))  # 10 bytes noncurrent, but outside the prefix
    assert stat_tuple(b) == (0, 1010, 0, 2, 1010, 2)
    b.apply_lifecycle(day(2.5))
    assert stat_tuple(b) == (0, 1010, 0, 2, 1010, 2)
    b.apply_lifecycle(day(3))  # docker/blob's version and (same age) its lone marker go
    assert stat_tuple(b) == (0, 10, 0, 1, 10, 1)
    assert b.versions("docker/blob") == []
    assert len(b.versions("keep/blob")) == 2


def test_expiration_rule_unversioned_deletes_current_objects():
    b = Bucket("b", T0, lifecycle=[rule(expiration_days=30)])
    b.put_object("old", day(0), size=5)
    b.put_object("new", day(10), size=3)
    b.apply_lifecycle(day(29))
    assert b.current_keys() == ["new", "old"]
    b.apply_lifecycle(day(30))  # old is 30 days old: gone; new is 20 days old
    assert b.current_keys() == ["new"]
    assert stat_tuple(b) == (3, 0, 1, 0, 3, 1)
    b.apply_lifecycle(day(40))
    assert stat_tuple(b) == (0, 0, 0, 0, 0, 0)


def test_expiration_then_noncurrent_in_one_jump_counts_from_expiry():
    # expire after 10 days (marker at day 10), noncurrent versions released 5 days later
    b = Bucket("b", T0, versioning="Enabled", lifecycle=[rule(expiration_days=10, noncurrent_days=5)])
    b.put_object("k", day(0), size=64)
    b.apply_lifecycle(day(14))  # expired at day 10, noncurrent for 4 days: still billed
    assert stat_tuple(b) == (0, 64, 0, 1, 64, 1)
    marker = b.versions("k")[0]
    assert marker.delete_marker and marker.last_modified == day(10)
    b.apply_lifecycle(day(15))  # 5 days after expiry: released, and the lone marker too
    assert stat_tuple(b) == (0, 0, 0, 0, 0, 0)
    assert b.versions("k") == []


def test_one_big_clock_jump_settles_everything():
    b = Bucket("b", T0, versioning="Enabled", lifecycle=[rule(noncurrent_days=3), rule(id="e", expiration_days=7)])
    b.put_object("k", day(0), size=9)
    b.apply_lifecycle(day(100))  # expired day 7, released day 10
    assert stat_tuple(b) == (0, 0, 0, 0, 0, 0)


def test_lifecycle_skip_does_not_miss_writes_or_rule_changes():
    b = Bucket("b", T0, versioning="Enabled", lifecycle=[rule(noncurrent_days=3)])
    b.put_object("k", day(0), size=1)
    b.apply_lifecycle(day(1))  # nothing due; next due is unknown-until-write
    b.put_object("k", day(1), size=2)  # size-1 version noncurrent since day 1
    b.apply_lifecycle(day(2))
    assert stat_tuple(b)[1] == 1
    b.apply_lifecycle(day(4))
    assert stat_tuple(b)[1] == 0
    # a rule change is picked up even before the previously computed due time
    b.put_object("k", day(4), size=3)  # size-2 version noncurrent since day 4
    b.apply_lifecycle(day(4.5))
    b.lifecycle = [rule(noncurrent_days=1)]
    b.apply_lifecycle(day(5))
    assert stat_tuple(b) == (3, 0, 1, 0, 3, 1)
    # deleting the current version by id makes an older one current; an expiration rule then sees it
    c = Bucket("c", T0, versioning="Enabled", lifecycle=[rule(expiration_days=2)])
    v1 = c.put_object("k", day(1), size=5)
    v2 = c.put_object("k", day(1.5), size=6)
    c.apply_lifecycle(day(1.6))  # nothing due before day 3.5 (v2's expiry)
    c.delete_object("k", day(1.7), version_id=v2.version_id)  # v1 (day 1) current again: due day 3
    c.apply_lifecycle(day(3))
    assert c.current("k") is None
    assert stat_tuple(c) == (0, 5, 0, 1, 5, 1)


# ---- storage ----------------------------------------------------------------------------


def test_storage_load_from_dataset():
    specs = [
        ds.Bucket(name="b1", versioning="Enabled", policy={"Version": "1", "Statement": [{"Effect": "Allow", "Action": ["oss:GetObject"], "Principal": ["ci"], "Resource": ["acs:oss:*:*:b1/*"]}]},
                  lifecycle=[rule(noncurrent_days=2)], extra_objects=[ds.ExtraObject(key="a", size=11)]),
        ds.Bucket(name="b2"),
    ]  # fmt: skip
    s = Storage()
    s.load(specs, T0, region_of={"b2": "cn-shanghai"})
    assert set(s.buckets) == {"b1", "b2"}
    b1 = s.bucket("b1")
    assert b1.region == "cn-hangzhou" and s.bucket("b2").region == "cn-shanghai"
    assert b1.versioning == "Enabled" and b1.lifecycle[0].noncurrent_days == 2
    assert json.loads(b1.policy) == {"Version": "1", "Statement": [{"Effect": "Allow", "Action": ["oss:GetObject"], "Principal": ["ci"], "Resource": ["acs:oss:*:*:b1/*"]}]}
    assert s.bucket("b2").policy is None
    assert stat_tuple(b1) == (11, 0, 1, 0, 11, 1)
    with pytest.raises(NoSuchBucket):
        s.bucket("nope")


def test_listing_order_and_prefix():
    b = Bucket("b", T0, versioning="Enabled")
    for k in ["b/2", "a", "b/1", "c"]:
        b.put_object(k, day(0), size=1)
    b.delete_object("c", day(1))
    assert b.current_keys() == ["a", "b/1", "b/2"]
    assert b.current_keys("b/") == ["b/1", "b/2"]
    assert [(v.key, v.delete_marker) for v in b.all_versions()] == [
        ("a", False), ("b/1", False), ("b/2", False), ("c", True), ("c", False)
    ]  # fmt: skip


def test_keys_after_and_prefix_follow_the_key_set():
    b = Bucket("b", T0, versioning="Enabled")
    for k in ["a", "b/1", "b/2", "b/3", "c"]:
        b.put_object(k, day(0), size=1)
    assert list(b.keys()) == ["a", "b/1", "b/2", "b/3", "c"]
    assert list(b.keys("b/")) == ["b/1", "b/2", "b/3"]
    assert list(b.keys("b/", after="b/1")) == ["b/2", "b/3"]
    assert list(b.keys("b/", after="a")) == ["b/1", "b/2", "b/3"]  # after sorts before the prefix
    assert list(b.keys("b/", after="b/3")) == []
    assert list(b.keys("b/", after="c")) == []
    assert list(b.keys("zz")) == []
    b.delete_object("b/2", day(1))  # a marker: still a key, no longer current
    assert b.current_keys("b/") == ["b/1", "b/3"]
    assert b.current_keys(after="b/1") == ["b/3", "c"]
    b.put_object("b/15", day(1), size=1)  # new key: the cached order is rebuilt
    assert b.current_keys("b/") == ["b/1", "b/15", "b/3"]
    b.delete_object("c", day(1), version_id=b.versions("c")[0].version_id)  # key gone entirely
    assert list(b.keys()) == ["a", "b/1", "b/15", "b/2", "b/3"]
    assert [v.key for v in b.all_versions(after="b/15")] == ["b/2", "b/2", "b/3"]


# ---- lifecycle filters (issue 12): Status, Tag, Not, size, CreatedBeforeDate ---------------
#
# One versioned bucket, four objects each overwritten once on day 0 (so each has one
# noncurrent version from day 0 on), a rule with noncurrent_days 2 and one filter; on day
# 3 what the filter selects is released, the rest still billed.
#   docker/a  10 bytes noncurrent, untagged
#   docker/b  1000 bytes noncurrent, untagged
#   docker/k  10 bytes noncurrent, tagged keep=1
#   logs/x    10 bytes noncurrent, untagged

def _filtered_bucket(**filters) -> Bucket:
    b = Bucket("b", T0, versioning="Enabled", lifecycle=[rule(prefix="", noncurrent_days=2, **filters)])
    for key, size, tags in (("docker/a", 10, None), ("docker/b", 1000, None), ("docker/k", 10, {"keep": "1"}),
                            ("logs/x", 10, None)):
        b.put_object(key, T0, size=size, tags=tags)
        b.put_object(key, T0, size=1, tags=tags)  # the first version becomes noncurrent at T0
    return b


def _noncurrent_keys(b: Bucket) -> list[str]:
    return sorted(v.key for v in b.all_versions() if not v.delete_marker and not b.is_latest(v))


@pytest.mark.parametrize("filters, left", [
    ({}, []),                                                            # plain: everything released
    ({"status": "Disabled"}, ["docker/a", "docker/b", "docker/k", "logs/x"]),  # a disabled rule does nothing
    ({"tags": [{"key": "keep", "value": "1"}]}, ["docker/a", "docker/b", "logs/x"]),  # only tagged objects
    ({"not": {"prefix": "docker/"}}, ["docker/a", "docker/b", "docker/k"]),  # all of docker/ left out
    ({"not": {"prefix": "docker/", "tags": [{"key": "keep", "value": "1"}]}}, ["docker/k"]),  # tagged ones only
    ({"object_size_greater_than": 10}, ["docker/a", "docker/k", "logs/x"]),  # strictly greater
    ({"object_size_less_than": 1000}, ["docker/b"]),                      # strictly less
])
def test_noncurrent_release_honours_the_rule_filters(filters, left):
    b = _filtered_bucket(**filters)
    b.apply_lifecycle(day(1.9))
    assert _noncurrent_keys(b) == ["docker/a", "docker/b", "docker/k", "logs/x"]  # not due yet
    b.apply_lifecycle(day(3))
    assert _noncurrent_keys(b) == left


def test_created_before_date_expires_current_objects_modified_before_it():
    b = Bucket("b", T0, lifecycle=[rule(prefix="", created_before_date=day(5))])
    b.put_object("old", day(1), size=3)
    b.apply_lifecycle(day(2))
    assert b.current_keys() == []  # modified before day 5: expired at the next run
    b.put_object("new", day(6), size=4)
    b.apply_lifecycle(day(100))
    assert b.current_keys() == ["new"]


def test_filtered_rule_dataset_validation():
    with pytest.raises(ValueError, match="object_size_greater_than must be below"):
        rule(noncurrent_days=1, object_size_greater_than=10, object_size_less_than=10)
    with pytest.raises(ValueError, match="not.prefix must lie under"):
        rule(prefix="docker/", noncurrent_days=1, **{"not": {"prefix": "logs/"}})
    with pytest.raises(ValueError, match="exclude each other"):
        rule(expiration_days=1, created_before_date=day(1))


# ---- the stat history behind a delayed GetBucketStat (issue 12) ---------------------------


def test_stat_as_of_an_earlier_time_undoes_later_changes():
    b = Bucket("b", T0, versioning="Enabled", lifecycle=[rule(prefix="", noncurrent_days=2)])
    b.put_object("loaded", T0, size=100)
    b.start_history()  # what a dataset loads has held all along
    b.put_object("k", day(1), size=10)       # day 1: +10 bytes, +1 object
    b.delete_object("k", day(2))             # day 2: a marker; the 10 bytes stay billed (noncurrent)
    b.apply_lifecycle(day(5))                # released at day 4 (noncurrent since day 2 + 2 days)
    # by hand: (bytes, objects, delete markers)
    assert b.stat_as_of(day(0.5)) == (100, 1, 0)
    assert b.stat_as_of(day(0.5) - timedelta(days=400)) == (100, 1, 0)  # before the history: as loaded
    assert b.stat_as_of(day(1.5)) == (110, 2, 0)
    assert b.stat_as_of(day(3)) == (110, 2, 1)
    assert b.stat_as_of(day(4.5)) == (100, 1, 0)  # the version and the lone marker went at day 4
    assert b.stat_as_of(day(5)) == (b.stat().storage_bytes, b.stat().object_count, 0) == (100, 1, 0)
    # the history survives a dump and restore
    again = Bucket.from_dump(json.loads(json.dumps(b.to_dump())))
    assert [again.stat_as_of(day(t)) for t in (0.5, 1.5, 3, 4.5)] == [b.stat_as_of(day(t)) for t in (0.5, 1.5, 3, 4.5)]
