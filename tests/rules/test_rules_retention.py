"""Retention (DESIGN section 3): hand-worked cases and a property test against a
brute-force oracle written here, independently of acr_gc.rules.retention."""

from __future__ import annotations

import re

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from acr_gc.rules import RuleError, plan
from acr_gc.rules.retention import ALL_READINGS, READING_BITS, Reading

DAY0 = pd.Timestamp("2024-01-01", tz="UTC")


def make_tags(rows: list[tuple[str, str, str, int]]) -> pd.DataFrame:
    """rows: (namespace, repo, tag, update day); digest and size are irrelevant here."""
    return pd.DataFrame(
        {
            "namespace": [r[0] for r in rows],
            "repo": [r[1] for r in rows],
            "repo_id": [f"crr-{r[0]}-{r[1]}" for r in rows],
            "tag": [r[2] for r in rows],
            "digest": [f"sha256:{i:064x}" for i in range(len(rows))],
            "image_size": pd.Series([100] * len(rows), dtype="int64"),
            "updated": pd.to_datetime([DAY0 + pd.Timedelta(days=r[3]) for r in rows], utc=True),
        }
    )


def make_rules(rows: list[tuple]) -> pd.DataFrame:
    """rows: (rule_id, scope, namespace, repo, retention_tag_count, tag_regexp, enable_delete_tag)."""
    frame = pd.DataFrame(
        rows,
        columns=["rule_id", "scope", "namespace", "repo", "retention_tag_count", "tag_regexp", "enable_delete_tag"],
    )
    return frame.astype({"retention_tag_count": "Int64", "enable_delete_tag": bool})


def verdicts(planned: pd.DataFrame) -> dict[str, tuple[bool, str]]:
    """{"ns/repo:tag": (expired, retained_by)} for literal comparison."""
    return {
        f"{r.namespace}/{r.repo}:{r.tag}": (bool(r.expired), r.retained_by)
        for r in planned.itertuples(index=False)
    }


# Three repositories with the same three tags: t1 newest (day 3), t2 (day 2), t3 oldest (day 1).
THREE_REPOS = make_tags(
    [(ns, repo, tag, day) for ns, repo in [("a", "x"), ("a", "y"), ("b", "z")] for tag, day in [("t1", 3), ("t2", 2), ("t3", 1)]]
)


def test_repo_and_namespace_scope_and_repo_without_rule():
    rules = make_rules(
        [
            ("r-repo", "REPO", "a", "x", 1, None, True),  # a/x keeps its newest tag only
            ("r-ns", "NAMESPACE", "b", None, 2, None, True),  # b/* keeps the two newest
        ]
    )
    assert verdicts(plan(THREE_REPOS, rules)) == {
        "a/x:t1": (False, "r-repo"),
        "a/x:t2": (True, ""),
        "a/x:t3": (True, ""),
        # a/y: the REPO rule names a/x, the NAMESPACE rule names b -> no rule, keep all
        "a/y:t1": (False, "no-rule"),
        "a/y:t2": (False, "no-rule"),
        "a/y:t3": (False, "no-rule"),
        "b/z:t1": (False, "r-ns"),
        "b/z:t2": (False, "r-ns"),
        "b/z:t3": (True, ""),
    }


def test_instance_scope_applies_to_every_repository():
    rules = make_rules([("inst", "INSTANCE", None, None, 2, None, True)])
    expected = {}
    for repo in ("a/x", "a/y", "b/z"):  # every repo: t1, t2 within the count of 2; t3 not
        expected |= {f"{repo}:t1": (False, "inst"), f"{repo}:t2": (False, "inst"), f"{repo}:t3": (True, "")}
    assert verdicts(plan(THREE_REPOS, rules)) == expected


def test_overlapping_rules_one_retaining_is_enough():
    rules = make_rules(
        [
            ("inst", "INSTANCE", None, None, 1, None, True),  # alone it would expire t2, t3
            ("keep-t3", "REPO", "a", "x", None, "t3", True),  # ...but this one keeps t3 in a/x
            ("ns-a", "NAMESPACE", "a", None, 1, None, True),  # also retains t1 in a/*
        ]
    )
    got = verdicts(plan(THREE_REPOS, rules))
    assert got["a/x:t1"] == (False, "inst,ns-a")  # ids in rules-frame order
    assert got["a/x:t2"] == (True, "")
    assert got["a/x:t3"] == (False, "keep-t3")
    assert got["a/y:t3"] == (True, "")  # keep-t3 does not apply to a/y
    assert got["b/z:t1"] == (False, "inst")


def test_ties_in_update_time_are_broken_by_tag_name_ascending():
    # Order: "d" (day 5) first, then the tie on day 1 sorted by name: "a", "b", "c".
    tags = make_tags([("n", "r", "c", 1), ("n", "r", "b", 1), ("n", "r", "d", 5), ("n", "r", "a", 1)])
    rules = make_rules([("keep2", "REPO", "n", "r", 2, None, True)])
    assert verdicts(plan(tags, rules)) == {
        "n/r:d": (False, "keep2"),  # position 1
        "n/r:a": (False, "keep2"),  # position 2: wins the tie by name
        "n/r:b": (True, ""),  # position 3
        "n/r:c": (True, ""),  # position 4
    }


def test_tag_regexp_must_match_the_whole_tag():
    tags = make_tags([("n", "r", "v1", 1), ("n", "r", "v1.2", 2), ("n", "r", "v10", 3), ("n", "r", "xv1", 4)])
    rules = make_rules([("semver", "REPO", "n", "r", None, r"v\d+", True)])
    # re.fullmatch: v1 and v10 match; v1.2 and xv1 only contain a match -> expired.
    assert verdicts(plan(tags, rules)) == {
        "n/r:v1": (False, "semver"),
        "n/r:v1.2": (True, ""),
        "n/r:v10": (False, "semver"),
        "n/r:xv1": (True, ""),
    }


def test_disabled_rules_are_ignored_entirely():
    tags = make_tags([("n", "r", "t1", 3), ("n", "r", "t2", 2), ("m", "s", "t1", 1)])
    rules = make_rules(
        [
            ("on", "REPO", "n", "r", 1, None, True),
            ("off-keeps-all", "INSTANCE", None, None, 100, None, False),  # would retain everything
            ("off-expires-all", "NAMESPACE", "m", None, 0, None, False),  # would expire m/s
        ]
    )
    assert verdicts(plan(tags, rules)) == {
        "n/r:t1": (False, "on"),
        "n/r:t2": (True, ""),  # the disabled rule's count does not retain it
        "m/s:t1": (False, "no-rule"),  # only a disabled rule names m -> no applying rule
    }


@pytest.mark.parametrize(
    ("count", "regexp", "expected"),
    [
        (0, None, {"t1": (True, ""), "t2": (True, "")}),  # count 0 retains none
        (None, None, {"t1": (True, ""), "t2": (True, "")}),  # applies, retains nothing
        (None, "t2", {"t1": (True, ""), "t2": (False, "r")}),  # by regexp only
        (0, "", {"t1": (True, ""), "t2": (True, "")}),  # empty regexp = no regexp
        (5, None, {"t1": (False, "r"), "t2": (False, "r")}),  # count beyond size
    ],
)
def test_retention_count_zero_none_and_beyond(count, regexp, expected):
    tags = make_tags([("n", "r", "t1", 2), ("n", "r", "t2", 1)])
    rules = make_rules([("r", "REPO", "n", "r", count, regexp, True)])
    assert verdicts(plan(tags, rules)) == {f"n/r:{k}": v for k, v in expected.items()}


def test_invalid_regexp_names_the_rule():
    rules = make_rules([("bad-1", "REPO", "n", "r", 1, "v(", True)])
    with pytest.raises(RuleError) as caught:
        plan(make_tags([("n", "r", "t", 1)]), rules)
    message = str(caught.value)
    assert message.startswith("lifecycle rule bad-1 (scope REPO n/r): invalid TagRegexp 'v(': ")
    assert "\n" not in message


def test_invalid_regexp_in_disabled_rule_is_not_an_error():
    rules = make_rules([("off", "INSTANCE", None, None, 1, "v(", False)])
    planned = plan(make_tags([("n", "r", "t", 1)]), rules)
    assert verdicts(planned) == {"n/r:t": (False, "no-rule")}


@pytest.mark.parametrize(
    ("row", "fragment"),
    [
        (("r", "GLOBAL", None, None, 1, None, True), "scope must be one of"),
        (("r", "NAMESPACE", None, None, 1, None, True), "lifecycle rule r (scope NAMESPACE): no namespace"),
        (("r", "REPO", "n", "r", -1, None, True), "must not be negative"),
    ],
)
def test_malformed_rules_raise_rule_error(row, fragment):
    with pytest.raises(RuleError, match=re.escape(fragment)):
        plan(make_tags([("n", "r", "t", 1)]), make_rules([row]))


def test_output_keeps_index_order_and_columns():
    tags = make_tags([("n", "r", "old", 1), ("n", "r", "new", 2)]).set_axis([10, 20])
    planned = plan(tags, make_rules([("k", "INSTANCE", None, None, 1, None, True)]))
    assert list(planned.index) == [10, 20]
    assert list(planned.columns) == [*tags.columns, "expired", "certainty", "retained_by", "deleted_max", "deleted_min"]
    assert planned["expired"].tolist() == [True, False]
    assert planned["expired"].dtype == bool


def test_empty_inputs():
    empty_tags = make_tags([])
    planned = plan(empty_tags, make_rules([]))
    assert len(planned) == 0 and {"expired", "retained_by"} <= set(planned.columns)
    only_tags = plan(make_tags([("n", "r", "t", 1)]), make_rules([]))
    assert verdicts(only_tags) == {"n/r:t": (False, "no-rule")}


# ---------------------------------------------------------------------------------------
# Property test: the vectorised planner against a brute-force oracle over python lists.

def oracle(tag_rows: list[tuple[str, str, str, int]], rule_rows: list[tuple],
           reading: Reading = Reading()) -> dict[str, tuple[bool, str]]:
    """DESIGN section 3 read literally, one tag at a time, under one reading."""
    repositories: dict[tuple[str, str], list[tuple[str, int]]] = {}
    for namespace, repo, tag, day in tag_rows:
        repositories.setdefault((namespace, repo), []).append((tag, day))
    result = {}
    for (namespace, repo), items in repositories.items():
        ordered = sorted(items, key=lambda item: (-item[1], item[0]))
        applying = []
        for rule_id, scope, rule_ns, rule_repo, count, regexp, enabled in rule_rows:
            if not enabled:
                continue
            if (
                scope == "INSTANCE"
                or (scope == "NAMESPACE" and rule_ns == namespace)
                or (scope == "REPO" and rule_ns == namespace and rule_repo in (repo, None))
            ):
                applying.append((rule_id, count, regexp))
        kept_by: dict[str, set[str]] = {rule_id: set() for rule_id, _, _ in applying}
        for rule_id, count, regexp in applying:
            def matches(tag: str) -> bool:
                if regexp is None:
                    return False
                found = re.fullmatch(regexp, tag) if reading.regexp_match == "full" else re.search(regexp, tag)
                return found is not None
            if reading.count_regexp == "count-or-match":
                for position, (tag, _day) in enumerate(ordered):
                    if (count is not None and position < count) or matches(tag):
                        kept_by[rule_id].add(tag)
            else:
                among = [tag for tag, _day in ordered if regexp is None or matches(tag)]
                if regexp is None:
                    among = among[: count or 0]
                elif count is not None:
                    among = among[:count]
                kept_by[rule_id].update(among)
        for tag, _day in ordered:
            retaining = [rule_id for rule_id, _, _ in applying if tag in kept_by[rule_id]]
            if not applying:
                result[f"{namespace}/{repo}:{tag}"] = (False, "no-rule")
            elif reading.combination == "any-retains":
                result[f"{namespace}/{repo}:{tag}"] = (not retaining, ",".join(retaining))
            else:
                result[f"{namespace}/{repo}:{tag}"] = (len(retaining) < len(applying), ",".join(retaining))
    return result


NAMES = ["a", "b"]
REGEXPS = [None, "a.*", "[ab]+", "1", "a|b1", "a?1*", "b", ".*1"]

tag_name = st.text(alphabet="ab1", min_size=1, max_size=3)
repo_tags = st.lists(st.tuples(tag_name, st.integers(0, 3)), max_size=7, unique_by=lambda t: t[0])
repositories = st.dictionaries(st.tuples(st.sampled_from(NAMES), st.sampled_from(["x", "y"])), repo_tags, max_size=4)
rule = st.tuples(
    st.sampled_from(["INSTANCE", "NAMESPACE", "REPO"]),
    st.sampled_from(NAMES),
    st.sampled_from(["x", "y", "*"]),  # "*": REPO scope without RepoName
    st.one_of(st.none(), st.just(0), st.integers(1, 4)),
    st.sampled_from(REGEXPS),
    st.booleans(),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(repositories, st.lists(rule, max_size=5))
def test_plan_matches_brute_force_oracle(repos, raw_rules):
    tag_rows = [(ns, repo, tag, day) for (ns, repo), items in repos.items() for tag, day in items]
    rule_rows = []
    for i, (scope, ns, repo, count, regexp, enabled) in enumerate(raw_rules):
        rule_rows.append(
            (
                f"r{i}",
                scope,
                None if scope == "INSTANCE" else ns,
                repo if scope == "REPO" and repo != "*" else None,
                count,
                regexp,
                enabled,
            )
        )
    planned = plan(make_tags(tag_rows), make_rules(rule_rows))
    assert verdicts(planned) == oracle(tag_rows, rule_rows)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(repositories, st.lists(rule, max_size=5))
def test_every_reading_matches_the_oracle_and_certainty_is_their_agreement(repos, raw_rules):
    """Each reading's bit against the oracle under that reading; a planned set of readings
    gives expired = any of them, certain = all of them."""
    tag_rows = [(ns, repo, tag, day) for (ns, repo), items in repos.items() for tag, day in items]
    rule_rows = [
        (f"r{i}", scope, None if scope == "INSTANCE" else ns, repo if scope == "REPO" and repo != "*" else None,
         count, regexp, enabled)
        for i, (scope, ns, repo, count, regexp, enabled) in enumerate(raw_rules)
    ]
    planned = plan(make_tags(tag_rows), make_rules(rule_rows), readings=None)
    keys = [f"{r.namespace}/{r.repo}:{r.tag}" for r in planned.itertuples(index=False)]
    expected = {reading: oracle(tag_rows, rule_rows, reading) for reading in ALL_READINGS}
    for reading in ALL_READINGS:
        bit = READING_BITS[reading]
        got = dict(zip(keys, (planned["deleted_max"].to_numpy() & bit) != 0))
        assert got == {key: verdict[0] for key, verdict in expected[reading].items()}, reading.name
    assert (planned["deleted_max"] == planned["deleted_min"]).all()  # no policies: no doubt within a reading
    for key, expired, certainty in zip(keys, planned["expired"], planned["certainty"]):
        votes = [expected[reading][key][0] for reading in ALL_READINGS]
        assert expired == any(votes)
        assert certainty == ("certain" if all(votes) else "possible" if any(votes) else "")
    pinned = Reading("each-rule", "count-among-matching", "partial")
    one = plan(make_tags(tag_rows), make_rules(rule_rows), readings=[pinned])
    assert not (one["certainty"] == "possible").any()
    assert dict(zip(keys, one["expired"])) == {k: v[0] for k, v in expected[pinned].items()}


def test_repo_scope_without_repo_name_covers_every_repository_of_the_namespace():
    rules = make_rules([("r", "REPO", "a", None, 1, None, True)])
    assert verdicts(plan(THREE_REPOS, rules)) == {
        "a/x:t1": (False, "r"), "a/x:t2": (True, ""), "a/x:t3": (True, ""),
        "a/y:t1": (False, "r"), "a/y:t2": (True, ""), "a/y:t3": (True, ""),
        "b/z:t1": (False, "no-rule"), "b/z:t2": (False, "no-rule"), "b/z:t3": (False, "no-rule"),
    }


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(repositories, st.lists(rule, max_size=5), st.data())
def test_plan_of_a_subset_of_repositories_is_that_subset_of_the_whole_plan(repos, raw_rules, data):
    """Retention is per repository (issue 16): the plan step plans each tag batch as it
    arrives, so planning any subset of repositories must give exactly their rows of the
    plan of all, under one reading and under all eight."""
    tag_rows = [(ns, repo, tag, day) for (ns, repo), items in repos.items() for tag, day in items]
    rule_rows = [
        (f"r{i}", scope, None if scope == "INSTANCE" else ns, repo if scope == "REPO" and repo != "*" else None,
         count, regexp, enabled)
        for i, (scope, ns, repo, count, regexp, enabled) in enumerate(raw_rules)
    ]
    tags, rules = make_tags(tag_rows), make_rules(rule_rows)
    chosen = data.draw(st.sets(st.sampled_from(sorted(repos)))) if repos else set()
    subset = tags[pd.Series([key in chosen for key in zip(tags["namespace"], tags["repo"])], index=tags.index,
                            dtype=bool)]
    for readings in ((Reading("each-rule", "count-among-matching", "partial"),), None):
        whole = plan(tags, rules, readings=readings)
        part = plan(subset, rules, readings=readings)
        pd.testing.assert_frame_equal(part, whole.loc[subset.index])
