"""Hostile tag, repository and namespace names flow through the real pipeline into CSV,
HTML and Markdown as inert text, lose nothing, write nothing outside the run folder, and
GC still deletes exactly the expired ones.

Real ACR's tag grammar would refuse most of these names, but the pipeline must survive
whatever the API answers. Two instances of one hand-worked dataset, each run in-process
by ``reclaim_storage`` on the session's Prefect server against a real emulator:

* ``cri-hostile`` — every hostile name is a tag of two repositories; the INSTANCE rule
  keeps the 8 newest per repository and the names are dated in opposite orders in the
  two, so each name is both deleted (in one) and kept (in the other). The run goes to
  COMPLETE (inline sampling on one-second days), so every file of section 8 is written.
* ``cri-hostile-gate`` — hostile tags that cannot be regenerated: the gate blocks and
  its message, which lists the tags, reaches report.html and report.md (rendered from
  the ledger as ``acr-gc report`` does).

The expected names come from the construction below, not from the code under test; the
emulator's truth is the second witness of what GC deleted.
"""

from __future__ import annotations

import csv
import hashlib
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from emulator_kit import new_emulator
from pipeline.pipeline_support import (
    OPS_AK,
    OPS_SECRET,
    cli_env,
    config_dict,
    run_cli,
    run_flow,
    summary_of,
    write_config,
)

pytestmark = pytest.mark.slow

HOSTILE = [
    "<script>alert(1)</script>",
    '=HYPERLINK("http://x","click")',
    "+1",
    "-1",
    "@SUM(A1)",
    "\t=cmd",
    "\r=cmd",
    "'quoted",  # a leading quote is what neutralising adds: it must survive as itself
    "..",
    "../../etc/passwd",
    "タグ",
    "\u202egnp.exe",  # RIGHT-TO-LEFT OVERRIDE
    "emoji-🚀",
    "pipe|`tick`*star*_u_~~s~~[l](javascript:x)",
    "x" * 128,
    "y" * 2000,
]
KEEP = 8  # the INSTANCE rule keeps this many newest tags per repository
NS_HOSTILE, REPO_HOSTILE = '<script>alert("ns")</script>|`x`', '=HYPERLINK("http://x")'
NS_PLAIN, REPO_PLAIN = "apps", "web"
SOURCE = '=HYPERLINK("http://evil","rebuild")'  # the manifest's "how to regenerate"
MANIFEST = f'namespace,repo,tag_glob,source\n{NS_PLAIN},{REPO_PLAIN},*,"{SOURCE.replace(chr(34), chr(34) * 2)}"\n'

# cri-hostile: HOSTILE[i] is dated Oct 28-i in the hostile repository (newest first: kept
# 0..7, deleted 8..15) and Oct 13+i in the plain one (newest first 15..8: kept 8..15).
RETAINED = {f"{NS_HOSTILE}/{REPO_HOSTILE}": sorted(HOSTILE[:KEEP]),
            f"{NS_PLAIN}/{REPO_PLAIN}": sorted(HOSTILE[KEEP:])}
EXPIRED = {(NS_HOSTILE, REPO_HOSTILE, t) for t in HOSTILE[KEEP:]} | {(NS_PLAIN, REPO_PLAIN, t) for t in HOSTILE[:KEEP]}
ALL_TAGS = {(NS_HOSTILE, REPO_HOSTILE, t) for t in HOSTILE} | {(NS_PLAIN, REPO_PLAIN, t) for t in HOSTILE}
# How each is regenerated: the hostile repository by its build rule "*", the plain one by the manifest.
REGENERATE_FROM = {NS_HOSTILE: "build rule image_tag *", NS_PLAIN: f"{SOURCE} (manifest line 2)"}

# cri-hostile-gate: "keep" is newest and kept (count 1); the others have no way back.
GATE_TAGS = ["<script>alert(2)</script>", "<img src=x onerror=alert(3)>", "&amp;lt;",
             "pipe|`tick`*star*_u_~~s~~[l](javascript:x)", '=HYPERLINK("http://x")', "'quoted",
             "../../etc/passwd", "タグ\u202egnp", "#heading", "\x1b[2J\x1b]0;pwned\x07"]

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _sha(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def _repo(namespace, name, dated, source=False):
    return {
        "namespace": namespace, "name": name,
        "source_code": {"type": "GITHUB", "namespace": "acme", "name": "code"} if source else None,
        "build_rules": [{"push_type": "GIT_BRANCH", "push_name": "main", "image_tag": "*"}] if source else [],
        "sync_rules": [],
        "tags": [{"tag": tag, "digest": _sha(f"{namespace}/{name}:{tag}"), "updated": day,
                  "layers": [_sha("base"), _sha(f"own {namespace}/{name}:{tag}")]} for tag, day in dated],
    }


def _instance(instance_id, namespaces, repositories, keep):
    return {"instance_id": instance_id, "name": instance_id, "region": "cn-hangzhou", "gc_whitelisted": True,
            "bucket": f"{instance_id}-storage", "namespaces": namespaces, "repositories": repositories,
            "lifecycle_rules": [{"scope": "INSTANCE", "retention_tag_count": keep, "enable_delete_tag": True}]}


def _dataset() -> dict:
    hostile = _repo(NS_HOSTILE, REPO_HOSTILE, [(t, f"2026-10-{28 - i:02d}T00:00:00Z") for i, t in enumerate(HOSTILE)],
                    source=True)
    plain = _repo(NS_PLAIN, REPO_PLAIN, [(t, f"2026-10-{13 + i:02d}T00:00:00Z") for i, t in enumerate(HOSTILE)])
    gate = _repo(NS_HOSTILE, "svc", [("keep", "2026-10-30T00:00:00Z")]
                 + [(t, f"2026-10-{20 - i:02d}T00:00:00Z") for i, t in enumerate(GATE_TAGS)])
    repos = [hostile, plain, gate]
    layers = {layer: 1000 for r in repos for t in r["tags"] for layer in t["layers"]}
    bucket = {"versioning": "Enabled", "lifecycle": [{"id": "nc", "prefix": "docker/", "noncurrent_days": 1}]}
    return {
        "clock": "2026-11-01T00:00:00Z",
        "credentials": [{"access_key_id": OPS_AK, "access_key_secret": OPS_SECRET, "principal": "uid-ops"}],
        "layers": layers,
        "instances": [_instance("cri-hostile", [NS_HOSTILE, NS_PLAIN], [hostile, plain], KEEP),
                      _instance("cri-hostile-gate", [NS_HOSTILE], [gate], 1)],
        "buckets": [{"name": "cri-hostile-storage", **bucket}, {"name": "cri-hostile-gate-storage", **bucket}],
    }


@pytest.fixture(scope="module")
def emu():
    with new_emulator(_dataset(), day_seconds=1.0, gc_tags_per_second=200) as process:
        yield process


def _config(emu, root: Path, instance_id: str) -> dict:
    (root / "regeneration.csv").write_text(MANIFEST, encoding="utf-8")
    return config_dict((emu.acr_endpoint, emu.oss_endpoint), root, instance_id, f"{instance_id}-storage",
                       sampling={"mode": "inline", "day_length": 1.0, "interval": "P1D", "margin_days": 0})


# ---- what the files must look like ----------------------------------------------------------


def _csv_cells(path: Path) -> list[dict]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _unneutralised(cell: str) -> str:
    """What a reader of our CSV gets back: one leading quote, if any, was added by us."""
    return cell[1:] if cell.startswith("'") else cell


def _assert_no_live_formula(path: Path) -> list[dict]:
    """No cell a spreadsheet would run: numbers aside, nothing starts with = + - @ TAB CR.
    Returns the rows with the neutralising quote taken off again."""
    rows = _csv_cells(path)
    assert rows, f"{path.name} is empty"
    for row in rows:
        for column, cell in row.items():
            if re.fullmatch(r"-?\d+(\.\d+)?", cell):
                continue
            assert not cell.startswith(FORMULA_START), (path.name, column, cell)
    return [{column: _unneutralised(cell) for column, cell in row.items()} for row in rows]


class _Page(HTMLParser):
    """Elements (with attributes) and the whole text of an HTML page, and for each piece of
    text the elements it sits in."""

    VOID = {"br", "img", "meta", "link", "hr", "input", "col", "source", "wbr"}

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict]] = []
        self.chunks: list[str] = []
        self.inside: list[tuple[str, tuple[str, ...]]] = []  # (text, open elements)
        self._open: list[str] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))
        if tag not in self.VOID:
            self._open.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))

    def handle_endtag(self, tag):
        if tag in self._open:
            del self._open[len(self._open) - 1 - self._open[::-1].index(tag):]

    def handle_data(self, data):
        self.chunks.append(data)
        self.inside.append((data, tuple(self._open)))

    def isolated(self, needle: str) -> bool:
        """Every piece of text holding ``needle`` sits in a <bdi>: a right-to-left override
        in the data cannot reverse the report's own words around it."""
        found = [within for text, within in self.inside if needle in text]
        return bool(found) and all("bdi" in within for within in found)

    @property
    def text(self) -> str:
        return "".join(self.chunks)


def _assert_inert(html: str, chart_src: str) -> _Page:
    """No element the data could have made: no script, no event handler, no image but the chart."""
    page = _Page(html)
    names = [name for name, _ in page.elements]
    assert "script" not in names and "iframe" not in names, names
    for name, attrs in page.elements:
        assert not any(key.startswith("on") for key in attrs), (name, attrs)
        if name == "img":
            assert attrs["src"].startswith(chart_src), attrs
        if name == "a":
            assert not attrs.get("href", "").lower().startswith("javascript:"), attrs
    return page


def _markdown_page(md_text: str, chart_src: str) -> _Page:
    """report.md as the Prefect UI shows it: CommonMark with raw HTML on, GFM tables and
    strikethrough. Every table row must keep the header's number of cells (a pipe in a name
    would add one)."""
    html = MarkdownIt("commonmark").enable(["table", "strikethrough"]).render(md_text)
    page = _assert_inert(html, chart_src)
    for table in re.findall(r"<table>.*?</table>", html, flags=re.S):
        widths = {len(re.findall(r"<t[hd][ >]", row)) for row in re.findall(r"<tr>.*?</tr>", table, flags=re.S)}
        assert len(widths) == 1, table
    assert "<s>" not in html, "a name struck through: markdown in names is live"
    return page


def _files_below(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


# ---- the runs ---------------------------------------------------------------------------------


def test_hostile_names_are_inert_lossless_and_gc_deletes_exactly_the_expired(
        emu, prefect_api_url, tmp_path, monkeypatch):
    emu.load(_dataset())
    elsewhere_before = {p for p in tmp_path.parent.iterdir()}
    config = _config(emu, tmp_path, "cri-hostile")

    state, folder = run_flow(config, monkeypatch)

    assert state.is_completed(), state.message
    summary = summary_of(folder)
    assert summary["state"] == "COMPLETE", summary
    assert summary["gc"]["tags_deleted"] == len(EXPIRED) == 16
    checks = dict(summary["checks"])
    assert "any-retains/count-or-match/full" in checks.pop("readings_consistent")  # issue 11
    assert checks == {"unexpected_deletions": 0, "missed_deletions": 0, "freeze_restored": True}
    # GC deleted exactly the expired names: the emulator's truth is the hand-worked retained set.
    assert emu.truth()["instances"]["cri-hostile"]["tags"] == RETAINED

    # Every CSV: no live formula, and nothing lost once our quote is taken off.
    plan = _assert_no_live_formula(folder / "plan.csv")
    assert {(r["namespace"], r["repo"], r["tag"]) for r in plan} == ALL_TAGS
    assert len(plan) == len(ALL_TAGS)
    assert {(r["namespace"], r["repo"], r["tag"]) for r in plan if r["expired"] == "True"} == EXPIRED
    deleted = _assert_no_live_formula(folder / "deleted_tags.csv")
    assert {(r["namespace"], r["repo"], r["tag"]) for r in deleted} == EXPIRED
    assert {r["regenerate_from"] for r in deleted if r["namespace"] == NS_PLAIN} == {REGENERATE_FROM[NS_PLAIN]}
    assert {r["regenerate_from"] for r in deleted if r["namespace"] == NS_HOSTILE} == {REGENERATE_FROM[NS_HOSTILE]}
    _assert_no_live_formula(folder / "samples.csv")
    _assert_no_live_formula(Path(config["report"]["out_dir"]) / "savings.csv")

    # report.html and report.md: the hostile namespace is shown as text, never as markup.
    html_page = _assert_inert((folder / "report.html").read_text(encoding="utf-8"), "data:image/png;base64,")
    assert NS_HOSTILE in html_page.text
    assert html_page.isolated(NS_HOSTILE)
    md_page = _markdown_page((folder / "report.md").read_text(encoding="utf-8"), "storage.png")
    assert NS_HOSTILE in md_page.text

    # Nothing written outside the run folder but the roll-up and the ledger; no new entry
    # beside this test's own folder.
    out = Path(config["report"]["out_dir"])
    assert {p.relative_to(folder).as_posix() for p in _files_below(folder)} == {
        "summary.json", "plan.csv", "deleted_tags.csv", "samples.csv", "storage.png", "report.md", "report.html"}
    assert {p.relative_to(out).as_posix() for p in _files_below(out) if folder not in p.parents} <= {
        "savings.csv", ".savings.csv.lock"}
    assert {p.name for p in tmp_path.iterdir()} <= {"out", "regeneration.csv", "ledger.db", "ledger.db-wal",
                                                    "ledger.db-shm", "ledger.db-journal"}
    assert {p for p in tmp_path.parent.iterdir()} == elsewhere_before


def test_hostile_names_in_the_gate_message_reach_the_reports_as_text(emu, prefect_api_url, tmp_path, monkeypatch):
    emu.load(_dataset())
    before = emu.truth()
    config = _config(emu, tmp_path, "cri-hostile-gate")

    state, folder = run_flow(config, monkeypatch)

    summary = summary_of(folder)
    assert summary["state"] == "BLOCKED" and summary["plan"]["tags_unregenerable"] == len(GATE_TAGS)
    after = emu.truth()
    assert after["instances"] == before["instances"] and after["buckets"] == before["buckets"]  # nothing changed

    # A blocked run writes plan.csv and summary.json; its report is what `acr-gc report`
    # renders from the ledger, where the run's message lists the blocking tags.
    from acr_gc.ledger import Ledger
    from acr_gc.reports.build import build_report

    ledger = Ledger(config["ledger"]["url"])
    try:
        assert build_report(ledger, folder.name) == folder
    finally:
        ledger.dispose()
    listed = [f"{NS_HOSTILE}/svc:{tag}" for tag in GATE_TAGS]
    html_page = _assert_inert((folder / "report.html").read_text(encoding="utf-8"), "data:image/png;base64,")
    md_page = _markdown_page((folder / "report.md").read_text(encoding="utf-8"), "storage.png")
    assert html_page.isolated("\u202e"), [w for t, w in html_page.inside if "\u202e" in t]
    for name in listed:
        assert name in html_page.text, name
        assert name in md_page.text, name
    plan = _assert_no_live_formula(folder / "plan.csv")
    assert {r["tag"] for r in plan} == {"keep", *GATE_TAGS}


ESCAPED = {"タグ\u202egnp": "タグ\\u202egnp", "\x1b[2J\x1b]0;pwned\x07": "\\x1b[2J\\x1b]0;pwned\\x07"}


@pytest.mark.parametrize("command", ["plan", "run"])
def test_the_terminal_shows_escapes_not_control_characters(emu, prefect_api_url, tmp_path, command):
    """``acr-gc plan`` and ``acr-gc run`` name the blocking tags on the operator's
    terminal: a name holding ESC sequences would clear the screen or retitle the window, a
    right-to-left override would reverse what follows. Those are shown as escapes, every
    other name verbatim."""
    emu.load(_dataset())
    config = write_config(_config(emu, tmp_path, "cri-hostile-gate"), tmp_path / "config.yaml")

    result = run_cli([command, "--config", str(config)], cli_env(prefect_api_url), timeout=120)

    assert result.returncode == 3, (result.stdout, result.stderr)  # the gate blocks
    for stream, text in (("stdout", result.stdout), ("stderr", result.stderr)):
        raw = [(ch, line[:80]) for line in text.splitlines() for ch in line if not ch.isprintable()]
        assert raw == [], f"{command}: raw control characters on {stream}: {raw[:3]}"
    expected = {f"{NS_HOSTILE}/svc:{ESCAPED.get(tag, tag)}" for tag in GATE_TAGS}
    if command == "plan":  # one line per tag: "  <namespace>/<repo>:<tag> <digest>"
        listed = {line.strip().rsplit(" ", 1)[0] for line in result.stderr.splitlines() if "/svc:" in line}
        assert listed == expected
    else:  # "state: BLOCKED — gate blocked: … (<namespace>/<repo>:<tag>, …); …"
        [line] = [line for line in result.stdout.splitlines() if line.startswith("state: BLOCKED")]
        assert all(name in line for name in expected), line
