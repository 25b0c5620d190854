"""Regenerability and the gate (DESIGN section 4): hand-worked datasets."""

from __future__ import annotations

import pandas as pd
import pytest

from acr_gc.rules import AllowListError, gate, parse_allow_list, regenerability


def planned_frame(rows: list[tuple[str, str, str, str, bool]]) -> pd.DataFrame:
    """rows: (namespace, repo, tag, digest, expired) -- the plan columns the gate reads."""
    return pd.DataFrame(rows, columns=["namespace", "repo", "tag", "digest", "expired"]).astype({"expired": bool})


REPLICA_COLUMNS = ["namespace", "repo", "tag", "digest", "target_instance_id"]
BUILD_COLUMNS = ["namespace", "repo", "image_tag", "has_source_code"]
MANIFEST_COLUMNS = ["namespace", "repo", "tag_glob", "source", "line_no"]

PLANNED = planned_frame(
    [
        ("a", "x", "latest", "D1", False),  # retained
        ("a", "x", "old", "D1", True),  # alias: retained a/x:latest has D1
        ("a", "x", "both", "D1", True),  # alias AND on the replica: alias comes first
        ("a", "x", "rep1", "D2", True),  # replica holds rep1 with D2
        ("a", "x", "rep2", "D3", True),  # replica holds rep2, but with another digest
        ("b", "y", "keep", "D9", False),  # retained, other repository
        ("a", "x", "elsewhere", "D9", True),  # D9 retained only in b/y: not an alias
        ("c", "app", "release-1", "D4", True),  # bound repo, rule release-* -> build-rule
        ("c", "app", "prerelease-1", "D5", True),  # release-* must match the whole tag
        ("d", "app", "release-1", "D6", True),  # rule exists but no source binding
        ("e", "svc", "v1.5", "D7", True),  # manifest glob v1.? covers it
        ("e", "svc", "v1.10", "D8", True),  # ? is one character: not covered -> none
        ("e", "svc", "tmp-3", "D10", True),  # nothing covers it; allow list e/svc:tmp-* does
    ]
)
REPLICAS = pd.DataFrame(
    [
        ("a", "x", "both", "D1", "cri-backup"),
        ("a", "x", "rep1", "D2", "cri-backup"),
        ("a", "x", "rep2", "D3-other", "cri-backup"),
    ],
    columns=REPLICA_COLUMNS,
)
BUILD_RULES = pd.DataFrame(
    [("c", "app", "release-*", True), ("d", "app", "release-*", False)],
    columns=BUILD_COLUMNS,
)
MANIFEST = pd.DataFrame(
    [("e", "svc", "v1.?", "git tag + make image", 2), ("f", "other", "*", "never used", 3)],
    columns=MANIFEST_COLUMNS,
).astype({"line_no": "int64"})
ALLOW = ["e/svc:tmp-*"]


def by_tag(frame: pd.DataFrame, column: str) -> dict[str, object]:
    return {f"{r.namespace}/{r.repo}:{r.tag}": getattr(r, column) for r in frame.itertuples(index=False)}


def test_first_holding_reason_per_expired_tag():
    result = regenerability(PLANNED, REPLICAS, BUILD_RULES, MANIFEST, ALLOW)
    assert by_tag(result, "regenerable_by") == {
        "a/x:latest": "",
        "a/x:old": "alias",
        "a/x:both": "alias",
        "a/x:rep1": "replica",
        "a/x:rep2": "none",
        "b/y:keep": "",
        "a/x:elsewhere": "none",
        "c/app:release-1": "build-rule",
        "c/app:prerelease-1": "none",
        "d/app:release-1": "none",
        "e/svc:v1.5": "manifest",
        "e/svc:v1.10": "none",
        "e/svc:tmp-3": "none",
    }
    how = by_tag(result, "regenerate_from")
    assert how["a/x:old"] == "retained tag latest"
    assert how["a/x:rep1"] == "replica on cri-backup"
    assert how["c/app:release-1"] == "build rule image_tag release-*"
    assert how["e/svc:v1.5"] == "git tag + make image (manifest line 2)"
    assert how["a/x:rep2"] == "" and how["a/x:latest"] == ""
    # Only the `none` tag covered by e/svc:tmp-* is allowed.
    assert {k for k, v in by_tag(result, "allowed").items() if v} == {"e/svc:tmp-3"}
    assert list(result.index) == list(PLANNED.index)


def test_gate_blocks_on_unallowed_none_and_lists_them():
    result = gate(regenerability(PLANNED, REPLICAS, BUILD_RULES, MANIFEST, ALLOW))
    assert result.passed is False
    assert sorted(by_tag(result.blocking, "digest")) == [
        "a/x:elsewhere",
        "a/x:rep2",
        "c/app:prerelease-1",
        "d/app:release-1",
        "e/svc:v1.10",
    ]


def test_gate_passes_when_everything_is_regenerable_or_allowed():
    allow = ["a/x:*", "c/app:pre*", "d/app:release-?", "e/svc:v1.1?"]
    result = gate(regenerability(PLANNED, REPLICAS, BUILD_RULES, MANIFEST, allow + ALLOW))
    assert result.passed is True
    assert result.blocking.empty


def test_no_sources_means_only_aliases_count():
    result = regenerability(PLANNED, None, None, None, None)
    expired = result[result["expired"]]
    assert set(expired.loc[expired["regenerable_by"] != "none", "tag"]) == {"old", "both"}
    assert not result["allowed"].any()


def test_build_rule_star_is_the_only_wildcard():
    planned = planned_frame(
        [("c", "app", "v1.0", "D1", True), ("c", "app", "v1x0", "D2", True), ("c", "app", "v", "D3", True)]
    )
    rules = pd.DataFrame([("c", "app", "v1.0", True), ("c", "app", "v*", True)], columns=BUILD_COLUMNS)
    result = regenerability(planned, None, rules, None, None)
    # "v1.0" is literal (the dot is not a regexp) -> v1x0 only via "v*"; "*" may match nothing.
    assert by_tag(result, "regenerate_from") == {
        "c/app:v1.0": "build rule image_tag v1.0",
        "c/app:v1x0": "build rule image_tag v*",
        "c/app:v": "build rule image_tag v*",
    }


def test_allow_list_is_validated_when_given_as_strings():
    with pytest.raises(AllowListError, match="'broken'"):
        regenerability(PLANNED, None, None, None, ["broken"])


def test_allow_list_frame_is_accepted():
    result = regenerability(PLANNED, REPLICAS, BUILD_RULES, MANIFEST, parse_allow_list(ALLOW))
    assert result["allowed"].sum() == 1
