"""Issue 11's pure parts: which readings agree with a GC, the re-check's "inside the gated
set", the blast radius, learning a reading from the ledger, complete paged listings,
and policies' best and worst case. Hand-worked inputs; no emulator."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest

from acr_gc.cloud.acr import Page
from acr_gc.rules import blast_radius, plan
from acr_gc.rules.retention import ALL_READINGS, READING_BITS, Reading
from acr_gc.rules.verification import outside_gated, readings_consistent, verify_deletions
from acr_gc.tasks.inventory import IncompleteListing, complete_listing

DAY0 = pd.Timestamp("2026-10-01", tz="UTC")


def tags(rows):
    """rows: (namespace, repo, tag, day) -- a larger day is newer."""
    return pd.DataFrame({
        "namespace": [r[0] for r in rows], "repo": [r[1] for r in rows],
        "repo_id": [f"crr-{r[0]}-{r[1]}" for r in rows], "tag": [r[2] for r in rows],
        "digest": [f"sha256:{r[0]}{r[1]}{r[2]}" for r in rows],
        "image_size": pd.Series([1] * len(rows), dtype="int64"),
        "updated": pd.to_datetime([DAY0 + pd.Timedelta(days=r[3]) for r in rows], utc=True),
    })


def rules(rows, **optional):
    frame = pd.DataFrame(rows, columns=["rule_id", "scope", "namespace", "repo", "retention_tag_count", "tag_regexp",
                                        "enable_delete_tag"]).astype({"retention_tag_count": "Int64"})
    return frame.assign(**optional)


# INSTANCE keep 1 + REPO keep 2 on a three-tag repository: any-retains deletes t1 only,
# each-rule deletes t1 and t2 (the instance rule alone).
THREE = tags([("a", "x", "t3", 3), ("a", "x", "t2", 2), ("a", "x", "t1", 1)])
OVERLAP = rules([("i", "INSTANCE", None, None, 1, None, True), ("r", "REPO", "a", "x", 2, None, True)])


def deleted(*names):
    return pd.DataFrame({"namespace": "a", "repo": "x", "tag": list(names)})


def test_readings_consistent_names_the_readings_that_predicted_the_deletions():
    planned = plan(THREE, OVERLAP, readings=None)
    any_retains = [r.name for r in ALL_READINGS if r.combination == "any-retains"]
    each_rule = [r.name for r in ALL_READINGS if r.combination == "each-rule"]
    assert readings_consistent(planned, deleted("t1")) == any_retains
    assert readings_consistent(planned, deleted("t1", "t2")) == each_rule
    assert readings_consistent(planned, deleted()) == []  # t1 goes under every reading
    assert readings_consistent(planned, deleted("t1", "t2", "t3")) == []


def test_a_possible_tag_that_survived_is_no_missed_deletion():
    planned = plan(THREE, OVERLAP, readings=None)
    assert dict(zip(planned["tag"], planned["certainty"])) == {"t3": "", "t2": "possible", "t1": "certain"}
    expired = planned[planned["expired"]]
    after = THREE[THREE["tag"] != "t1"]
    check = verify_deletions(THREE, expired, after)
    assert check.missed.empty and check.unexpected.empty
    check = verify_deletions(THREE, expired, THREE)  # nothing deleted: t1 was certain
    assert list(check.missed["tag"]) == ["t1"]
    check = verify_deletions(THREE, planned[planned["certainty"] == "certain"], after[after["tag"] != "t2"])
    assert list(check.unexpected["tag"]) == ["t2"]  # outside what was gated: unexpected


def test_outside_gated_is_what_a_fresh_plan_adds_to_the_gated_set():
    gated = plan(THREE, OVERLAP, readings=None)
    assert outside_gated(gated, gated).empty
    # a tag pushed since (newest, t0 is old): the fresh plan expires t1 .. and the new tag shifts t2 out
    pushed = pd.concat([THREE, tags([("a", "x", "t4", 4)])], ignore_index=True)
    fresh = plan(pushed, OVERLAP, readings=None)
    assert list(outside_gated(fresh, gated)["tag"]) == ["t3"]  # now possible (each-rule), never gated
    # the same tag name re-pushed with another image: not the gated image
    repushed = THREE.assign(digest=THREE["digest"].where(THREE["tag"] != "t1", "sha256:other"))
    assert list(outside_gated(plan(repushed, OVERLAP, readings=None), gated)["tag"]) == ["t1"]


def test_blast_radius_share_and_emptied_repositories():
    frame = pd.DataFrame({"namespace": ["a"] * 4 + ["b"] * 2, "repo": ["x"] * 4 + ["y"] * 2,
                          "expired": [True, False, False, False, True, True]})
    result = blast_radius(frame, 0.9, [])
    assert result.emptied == ["b/y"] and not result.too_large and not result.passed
    assert "b/y" in result.message(0.9)
    assert blast_radius(frame, 0.9, ["b/y"]).passed
    tight = blast_radius(frame, 0.4, ["b/y"])
    assert tight.too_large and tight.share == pytest.approx(0.5) and "max_delete_share" in tight.message(0.4)


def test_policies_make_tags_possible_never_certain():
    repo = tags([("a", "x", "dev-3", 5), ("a", "x", "main", 4), ("a", "x", "dev-2", 3), ("a", "x", "dev-1", 2),
                 ("a", "x", "old", 1)])
    policy_only = rules([("p", "REPO", "a", "x", None, None, True)],
                        policies=[[{"Condition": {"LatestTagCount": 1}, "Filter": {"TagWildcard": "dev-*"}}]])
    planned = plan(repo, policy_only, readings=None)
    assert dict(zip(planned["tag"], planned["certainty"])) == {
        "dev-3": "", "main": "", "dev-2": "possible", "dev-1": "possible", "old": ""}
    # push age honoured when the GC time is known: dev-1 (day 2) is older than 2 days at day 5, dev-2 is not
    aged = rules([("p", "REPO", "a", "x", None, None, True)],
                 policies=[[{"Condition": {"LastPushOlderThanDays": 2}}]])
    at = (DAY0 + pd.Timedelta(days=5)).to_pydatetime()
    planned = plan(repo, aged, readings=None, now=at)
    assert set(planned.loc[planned["expired"], "tag"]) == {"dev-1", "old"}
    # pull age is not in the API: every tag possible
    pulled = rules([("p", "REPO", "a", "x", None, None, True)],
                   policies=[[{"Condition": {"LastPullOlderThanDays": 30}}]])
    assert set(plan(repo, pulled, readings=None)["certainty"]) == {"possible"}
    # dry-run rules delete nothing
    dry = rules([("d", "INSTANCE", None, None, 0, None, True)], dry_run=[True])
    assert not plan(repo, dry, readings=None)["expired"].any()


def test_learned_reading_is_the_last_single_consistent_one(tmp_path):
    from acr_gc.ledger import Ledger
    from acr_gc.ledger.models import Run
    from acr_gc.ledger.readings import learned_reading

    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)

    def add(run_id, day, observed, instance="cri-a"):
        with ledger.session() as session:
            session.add(Run(run_id=run_id, instance_id=instance, bucket="b", region="r", started_at=start + timedelta(days=day),
                            out_dir="o", checks_json=json.dumps({"readings_consistent": observed})))

    one, other = ALL_READINGS[5].name, ALL_READINGS[2].name
    try:
        assert learned_reading(ledger, "cri-a") is None
        add("r1", 1, [one, other])
        assert learned_reading(ledger, "cri-a") is None  # never singled out
        add("r2", 2, [one])
        add("r3", 3, None)  # a run without a finished GC observes nothing
        assert learned_reading(ledger, "cri-a") == one
        add("r4", 4, [one, other])  # consistent with it: still learned
        assert learned_reading(ledger, "cri-a") == one
        add("r5", 5, [other, ALL_READINGS[0].name])  # contradicts it: back to conservative
        assert learned_reading(ledger, "cri-a") is None
        add("x1", 6, [other], instance="cri-b")
        assert learned_reading(ledger, "cri-b") == other
    finally:
        ledger.dispose()


def test_complete_listing_deduplicates_retries_and_then_fails():
    def pages_of(*answers):
        calls = iter(answers)
        return lambda: next(calls)

    # a repeated item (the set shifted by one while paging) is dropped
    shifted = [Page(["a", "b"], 1, 2, 3), Page(["b", "c"], 2, 2, 3)]
    assert complete_listing(pages_of(shifted), str, "L") == ["a", "b", "c"]
    # one item skipped once: read again, the second reading adds up
    skipped = [Page(["a", "b"], 1, 2, 3), Page([], 2, 2, 3)]
    whole = [Page(["a", "b"], 1, 2, 3), Page(["c"], 2, 2, 3)]
    assert complete_listing(pages_of(skipped, whole), str, "L") == ["a", "b", "c"]
    # TotalCount changing between pages is no complete listing either
    moving = [Page(["a", "b"], 1, 2, 3), Page(["c", "d"], 2, 2, 4)]
    with pytest.raises(IncompleteListing, match="ListRepoTag ns/r: 2 distinct item.*TotalCount says 3"):
        complete_listing(pages_of(skipped, moving, skipped), str, "ListRepoTag ns/r")


def test_reading_names_round_trip_and_bits_are_distinct():
    assert {Reading.from_name(r.name) for r in ALL_READINGS} == set(ALL_READINGS)
    assert sorted(READING_BITS.values()) == [1 << i for i in range(8)]
    with pytest.raises(ValueError):
        Reading.from_name("each-rule/count-or-match")
