"""Regeneration manifest CSV and allow-list parsing: good input and one clear message per problem."""

from __future__ import annotations

import re

import pytest

from acr_gc.rules import AllowListError, ManifestError, load_manifest, parse_allow_list, tag_glob_matches

HEADER = "namespace,repo,tag_glob,source\n"


def write(tmp_path, content: str | bytes, name: str = "m.csv"):
    path = tmp_path / name
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8", newline="")
    else:
        path.write_bytes(content)
    return path


def test_good_manifest_with_bom_blank_lines_quotes_and_spaces(tmp_path):
    path = write(
        tmp_path,
        "\ufeff" + HEADER + "team, web ,release-*,\"ci: make image, then push\"\n\nteam,api/v2,v?.*,rebuild from git\n",
    )
    frame = load_manifest(path)
    assert list(frame.columns) == ["namespace", "repo", "tag_glob", "source", "line_no"]
    assert frame.to_dict("records") == [
        {"namespace": "team", "repo": "web", "tag_glob": "release-*", "source": "ci: make image, then push", "line_no": 2},
        # line 3 is blank, so the second row is on line 4
        {"namespace": "team", "repo": "api/v2", "tag_glob": "v?.*", "source": "rebuild from git", "line_no": 4},
    ]
    assert str(frame["line_no"].dtype) == "int64"


def test_header_only_is_an_empty_manifest(tmp_path):
    assert load_manifest(write(tmp_path, HEADER)).empty


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (HEADER + "a,b,c,d\na,b,c,d\nns,repo,,src\n", "line 4: empty tag_glob"),
        (HEADER + ",repo,v1,src\n", "line 2: empty namespace"),
        (HEADER + "ns,repo,v1,   \n", "line 2: empty source"),
        (HEADER + "ns,repo,v1\n", "line 2: expected 4 fields (namespace,repo,tag_glob,source), found 3"),
        (HEADER + "ns,repo,v1,src,extra\n", "line 2: expected 4 fields (namespace,repo,tag_glob,source), found 5"),
        ("namespace,repo,tag,source\nns,repo,v1,src\n", "line 1: header must be exactly namespace,repo,tag_glob,source, found namespace,repo,tag,source"),
        ("repo,namespace,tag_glob,source\n", "line 1: header must be exactly"),
        ("ns,repo,v1,src\n", "line 1: header must be exactly"),
        (HEADER + 'ns,repo,v1,"unterminated\n', "malformed CSV"),
        (HEADER + "ns/repo,x,v1,src\n", "line 2: namespace 'ns/repo' must not contain '/' or ':'"),
        (HEADER + "ns,repo:v1,v1,src\n", "line 2: repo 'repo:v1' must not contain ':'"),
        (HEADER + "ns,repo,v 1,src\n", "line 2: tag_glob 'v 1' must not contain spaces"),
        (HEADER + "ns,re*,v1,src\n", "line 2: repo 're*' must be a literal name"),
        ("", "empty file; expected the header namespace,repo,tag_glob,source"),
    ],
)
def test_bad_manifest_one_clear_line(tmp_path, content, message):
    path = write(tmp_path, content)
    with pytest.raises(ManifestError) as caught:
        load_manifest(path)
    text = str(caught.value)
    assert text.startswith(f"regeneration manifest {path}")
    assert message in text
    assert "\n" not in text


def test_exact_message_for_empty_field(tmp_path):
    path = write(tmp_path, HEADER + "a,b,c,d\na,b,c,d\nns,repo,,src\n")
    with pytest.raises(ManifestError, match=re.escape(f"regeneration manifest {path} line 4: empty tag_glob")):
        load_manifest(path)


def test_not_utf8_names_the_line(tmp_path):
    path = write(tmp_path, HEADER.encode() + b"ns,repo,v1,ok\nns,repo,v2,caf\xe9\n")
    with pytest.raises(ManifestError, match=r"m\.csv line 3: not valid UTF-8"):
        load_manifest(path)


def test_unreadable_file(tmp_path):
    with pytest.raises(ManifestError, match=r"regeneration manifest .*missing\.csv: cannot read"):
        load_manifest(tmp_path / "missing.csv")
    with pytest.raises(ManifestError, match="cannot read"):
        load_manifest(tmp_path)  # a directory


def test_allow_list_parses_namespace_repo_and_glob():
    frame = parse_allow_list(["team/web:release-*", "team/api/v2:v?", "ns/r:exact"])
    assert frame.to_dict("records") == [
        {"namespace": "team", "repo": "web", "tag_glob": "release-*", "entry": "team/web:release-*"},
        {"namespace": "team", "repo": "api/v2", "tag_glob": "v?", "entry": "team/api/v2:v?"},
        {"namespace": "ns", "repo": "r", "tag_glob": "exact", "entry": "ns/r:exact"},
    ]
    assert parse_allow_list([]).empty and parse_allow_list(None).empty


@pytest.mark.parametrize(
    ("entry", "fragment"),
    [
        ("repo:tag", "expected 'namespace/repo:tag-glob'"),
        ("ns/repo", "expected 'namespace/repo:tag-glob'"),
        ("/repo:tag", "empty namespace"),
        ("ns/:tag", "empty repo"),
        ("ns/repo:", "empty tag glob"),
        ("ns/re*:tag", "must be a literal name"),
        ("ns/repo:a b", "must not contain spaces"),
    ],
)
def test_bad_allow_entries_name_the_entry(entry, fragment):
    with pytest.raises(AllowListError) as caught:
        parse_allow_list(["ok/repo:v1", entry])
    assert str(caught.value).startswith(f"policy.allow_unregenerable entry {entry!r}: ")
    assert fragment in str(caught.value)


def test_non_string_allow_entry():
    with pytest.raises(AllowListError, match="entry 42"):
        parse_allow_list([42])


@pytest.mark.parametrize(
    ("glob", "tag", "expected"),
    [
        ("release-*", "release-1", True),
        ("release-*", "prerelease-1", False),
        ("v1.?", "v1.5", True),
        ("v1.?", "v1.10", False),
        ("v1.?", "v1x5", False),  # the dot is literal
        ("[ab]", "a", False),  # brackets are literal, not a class
        ("*", "", True),
    ],
)
def test_tag_glob_semantics(glob, tag, expected):
    assert tag_glob_matches(glob, tag) is expected
