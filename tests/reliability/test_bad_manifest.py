"""The operator's regeneration manifest (``policy.regeneration_manifest``) with bad rows is
refused at plan time with one line naming the file and the line, before any request to
the cloud; what a careful operator would call harmless is accepted, and each test says
which and why.

tests/rules/test_rules_manifest.py covers the grammar row by row (missing and extra
columns, empty fields, the header, one non-UTF-8 byte, a missing file, a folder). This
module adds what spreadsheets and scripts really produce (CRLF, a BOM, quoted newlines,
';' separators, UTF-16, NUL bytes, formula-looking text), sizes (10 MB of rows, one 10 MB
line, an endless device) and ``acr-gc plan`` itself on a few of them: exit 2, one line.
"""

from __future__ import annotations

import time
import tracemalloc
from pathlib import Path

import pytest
import yaml

from emulator_kit import new_emulator
from acr_gc.rules import ManifestError, load_manifest
from pipeline.pipeline_support import OPS_AK, OPS_SECRET, cli_env, run_cli

HEADER = "namespace,repo,tag_glob,source\n"


def _write(tmp_path: Path, content: str | bytes, name: str = "manifest.csv") -> Path:
    path = tmp_path / name
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8", newline="")
    else:
        path.write_bytes(content)
    return path


def _refusal(path: Path) -> str:
    with pytest.raises(ManifestError) as caught:
        load_manifest(path)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"regeneration manifest {path}"), message
    return message


def test_excel_crlf_bom_and_trailing_blank_lines_are_accepted(tmp_path):
    """What Excel's "CSV UTF-8" writes: a BOM, CRLF line ends, blank lines at the end.
    None changes the meaning of a row, so refusing them would only annoy."""
    path = _write(tmp_path, "\ufeff" + HEADER.replace("\n", "\r\n") + "apps,web,v*,make web\r\n\r\n\r\n")
    assert load_manifest(path).to_dict("records") == [
        {"namespace": "apps", "repo": "web", "tag_glob": "v*", "source": "make web", "line_no": 2}]


def test_quoted_newline_in_source_keeps_later_line_numbers_true(tmp_path):
    """A multi-line source (a pasted script) is legitimate CSV; the rows after it must
    still be reported on the lines an editor shows."""
    path = _write(tmp_path, HEADER + 'apps,web,v*,"docker build .\ndocker push"\napps,api,r*,\n')
    assert "line 4: empty source" in _refusal(path)


def test_formula_looking_source_is_accepted_as_text(tmp_path):
    """The source is free text for a person; it is neutralised where it is written to a
    spreadsheet (deleted_tags.csv, see test_hostile_names.py), not refused here."""
    path = _write(tmp_path, HEADER + 'apps,web,v*,"=HYPERLINK(""http://x"",""rebuild"")"\n')
    assert load_manifest(path)["source"].tolist() == ['=HYPERLINK("http://x","rebuild")']


def test_nul_byte_is_refused(tmp_path):
    """A NUL is a sign of a binary or UTF-16 file, never of a tag name."""
    path = _write(tmp_path, HEADER.encode() + b"apps,we\x00b,v*,make\n")
    assert "line 2: repo 'we\\x00b' must not contain control characters" in _refusal(path)


def test_semicolon_separated_file_is_refused_with_the_reason(tmp_path):
    """European Excel separates with ';': the whole header is one field. Say so."""
    path = _write(tmp_path, HEADER.replace(",", ";") + "apps;web;v*;make\n")
    assert "line 1: fields are separated by ';', expected ','" in _refusal(path)


def test_utf16_file_is_refused_naming_the_first_bad_byte(tmp_path):
    """Excel's "Unicode text" is UTF-16: not the UTF-8 the format asks for."""
    path = _write(tmp_path, (HEADER + "apps,web,v*,make\n").encode("utf-16"))
    assert "line 1: not valid UTF-8 (byte 0xff)" in _refusal(path)


def test_comment_lines_are_refused(tmp_path):
    """The format has no comments: a '#' row cannot be told from a namespace named '#'."""
    path = _write(tmp_path, HEADER + "# web is rebuilt by CI\napps,web,v*,make\n")
    assert "line 2: expected 4 fields (namespace,repo,tag_glob,source), found 1" in _refusal(path)


def test_ten_megabytes_of_rows_are_accepted_in_seconds(tmp_path):
    """A script may write one row per tag: 10 MB (~250,000 rows) is big but valid."""
    row = "apps,web,build-0000*,ci pipeline rebuild\n"
    rows = 10_000_000 // len(row)
    path = _write(tmp_path, HEADER + row * rows)
    started = time.monotonic()
    frame = load_manifest(path)
    assert len(frame) == rows and int(frame["line_no"].iloc[-1]) == rows + 1
    assert time.monotonic() - started < 10


def test_one_ten_megabyte_line_is_refused_naming_it(tmp_path):
    path = _write(tmp_path, HEADER + "apps,web,v*," + "x" * 10_000_000 + "\n")
    assert "line 2: malformed CSV: field larger than field limit" in _refusal(path)


def test_endless_input_is_refused_after_a_bounded_read(tmp_path):
    """``/dev/zero`` as the manifest would otherwise be read until memory runs out."""
    tracemalloc.start()
    try:
        message = _refusal(Path("/dev/zero"))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert message == "regeneration manifest /dev/zero: larger than 64 MiB: not a regeneration manifest", message
    assert peak < 200 * 2**20, f"peak {peak / 2**20:.0f} MiB"


# ---- acr-gc plan: exit 2, one line, no request ---------------------------------------------

DATASET = {
    "clock": "2026-11-01T00:00:00Z",
    "credentials": [{"access_key_id": OPS_AK, "access_key_secret": OPS_SECRET, "principal": "uid-ops"}],
    "layers": {"sha256:" + "1" * 64: 1000},
    "instances": [{
        "instance_id": "cri-man", "name": "cri-man", "bucket": "cri-man-storage", "gc_whitelisted": True,
        "namespaces": ["apps"],
        "repositories": [{"namespace": "apps", "name": "web", "tags": [
            {"tag": f"v{i}", "digest": "sha256:" + str(i) * 64, "updated": f"2026-10-0{i}T00:00:00Z",
             "layers": ["sha256:" + "1" * 64]} for i in range(1, 4)]}],
        "lifecycle_rules": [{"scope": "INSTANCE", "retention_tag_count": 1}],
    }],
    "buckets": [{"name": "cri-man-storage", "versioning": "Enabled",
                 "lifecycle": [{"id": "nc", "prefix": "docker/", "noncurrent_days": 1}]}],
}


@pytest.fixture(scope="module")
def emu():
    with new_emulator(DATASET) as process:
        yield process


def _missing_column(root: Path) -> Path:
    return _write(root, HEADER + "apps,web,v*,make web\napps,web,v1\n")


def _a_folder(root: Path) -> Path:
    folder = root / "manifests"
    folder.mkdir()
    return folder


# (case, where the manifest is, the one line's tail after the file name)
PLAN_CASES = [
    ("missing-column", _missing_column, " line 3: expected 4 fields (namespace,repo,tag_glob,source), found 3"),
    ("a-folder", _a_folder, ": cannot read: Is a directory"),
    ("endless", lambda root: Path("/dev/zero"), ": larger than 64 MiB: not a regeneration manifest"),
]


@pytest.mark.slow
@pytest.mark.parametrize("case, where, tail", PLAN_CASES, ids=[c[0] for c in PLAN_CASES])
def test_plan_exits_2_naming_file_and_line_before_any_request(emu, tmp_path, case, where, tail):
    manifest = where(tmp_path)
    config = {
        "target": {"instance_id": "cri-man", "bucket": "cri-man-storage",
                   "acr_endpoint": emu.acr_endpoint, "oss_endpoint": emu.oss_endpoint},
        "policy": {"regeneration_manifest": str(manifest)},
        "freeze": {"principals": ["acs:ram::1234567890:user/ci-pusher"]},
        "report": {"out_dir": str(tmp_path / "out")},
        "ledger": {"url": f"sqlite:///{tmp_path / 'ledger.db'}"},
    }
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
    before = emu.truth()

    result = run_cli(["plan", "--config", str(config_path)], cli_env(None), timeout=90)

    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stderr.splitlines() == [f"acr-gc: regeneration manifest {manifest}{tail}"], result.stderr
    assert result.stdout == ""
    assert not (tmp_path / "out").exists()
    assert emu.truth()["request_counts"] == before["request_counts"]  # the cloud was not asked
