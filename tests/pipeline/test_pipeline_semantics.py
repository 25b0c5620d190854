"""Retention under doubt (issue 11): the emulator plays each of the eight readings of the
lifecycle rules, and the conservative plan must hold under every one of them.

Real parts only: the emulator as a subprocess (one for the module, re-loaded and told
which reading to play per test), the real SDKs, ``reclaim_storage`` on the session's
Prefect server. The emulator's GC has its own retention code: what it deleted is the
independent witness the plan is checked against.

The dataset's rules overlap on purpose (INSTANCE count+regexp, NAMESPACE count+regexp,
REPO count+regexp, REPO without RepoName) and its tags are chosen so that the eight
readings delete eight different sets (asserted below from the cloud's own deletions), so
``readings_consistent`` must name exactly the reading played.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from emulator_kit import new_emulator
from acr_gc.rules.retention import ALL_READINGS, Reading
from pipeline_support import (
    BASE_LAYER_SIZE,
    CLOCK,
    GITHUB,
    OPS_AK,
    OPS_PRINCIPAL,
    OPS_SECRET,
    RecordingProxy,
    bucket,
    cli_env,
    config_dict,
    csv_rows,
    instance,
    layer,
    ledger_rows,
    repo,
    run_cli,
    run_flow,
    summary_of,
    tag,
    write_config,
)

pytestmark = pytest.mark.slow

INSTANCE, BUCKET = "cri-sem", "cri-sem-storage"

# newest first; each tag its own image, every repository rebuildable (build rule "*"),
# so the gate never blocks and every reading's deletions can go through it
REPOS = {
    ("apps", "web"): ["main", "v3-release-3", "v2", "release-2", "feat", "v1-rc", "v1", "release-1",
                      "v0-release-0", "old"],
    ("apps", "api"): ["b5", "b4", "v3", "b3", "v2-hotfix", "b2", "b1"],
    ("infra", "base"): ["x9", "stable", "stable-new", "x8", "x7", "x6", "x5", "x4", "x3", "x2", "stable-old",
                        "x1", "stable2"],
}
RULES = [
    {"scope": "INSTANCE", "retention_tag_count": 8, "tag_regexp": "stable"},
    {"scope": "NAMESPACE", "namespace": "apps", "retention_tag_count": 2, "tag_regexp": r"v\d+"},
    {"scope": "REPO", "namespace": "apps", "repo": "web", "retention_tag_count": 1, "tag_regexp": r"release-\d"},
    {"scope": "REPO", "namespace": "infra", "retention_tag_count": 3},  # no RepoName: all of infra
    {"scope": "NAMESPACE", "namespace": "apps", "retention_tag_count": 0, "dry_run": True},  # scans only
]
ALL_REPOS = [f"{ns}/{name}" for ns, name in REPOS]


def _image(ns: str, name: str, t: str) -> str:
    return f"{ns}-{name}-{t}"


def semantics_dataset() -> dict:
    repositories, own = [], {}
    for (ns, name), tags in REPOS.items():
        rows = []
        for day, t in enumerate(tags):
            own[_image(ns, name, t)] = 100 + day
            rows.append(tag(t, _image(ns, name, t), f"2026-10-{30 - day:02d}T00:00:00Z"))
        repositories.append(repo(ns, name, rows, source_code=GITHUB, build_rules=["*"]))
    return {
        "clock": CLOCK,
        "credentials": [{"access_key_id": OPS_AK, "access_key_secret": OPS_SECRET, "principal": OPS_PRINCIPAL}],
        "layers": {layer("base"): BASE_LAYER_SIZE, **{layer(k): v for k, v in own.items()}},
        "instances": [instance(INSTANCE, BUCKET, ["apps", "infra"], repositories, RULES)],
        "buckets": [bucket(BUCKET)],
    }


def _played(reading: Reading) -> dict:
    return {"combination": reading.combination, "count_regexp": reading.count_regexp,
            "regexp_match": reading.regexp_match}


@pytest.fixture(scope="module")
def sem_emu():
    with new_emulator(semantics_dataset(), gc_tags_per_second=200) as emu:
        yield emu


def _tags(truth: dict) -> set[str]:
    return {f"{name}:{t}" for name, tags in truth["instances"][INSTANCE]["tags"].items() for t in tags}


def _run(emu, tmp_path, monkeypatch, semantics, reading: Reading, ledger_root: Path | None = None):
    emu.load(semantics_dataset())
    assert emu.set_readings(**_played(reading)) == _played(reading)
    config = config_dict((emu.acr_endpoint, emu.oss_endpoint), ledger_root or tmp_path, INSTANCE, BUCKET,
                         policy={"semantics": semantics, "max_delete_share": 1.0, "allow_emptied": ALL_REPOS})
    config["report"]["out_dir"] = str(tmp_path / "out")
    before = _tags(emu.truth())
    state, folder = run_flow(config, monkeypatch)
    deleted = before - _tags(emu.truth())
    return state, folder, deleted, config


DELETED_BY_READING: dict[str, frozenset[str]] = {}
CERTAINTY_WRITTEN: dict[str, dict[str, str]] = {}  # per reading played: deleted_tags.csv's certainty column


@pytest.mark.parametrize("reading", ALL_READINGS, ids=[r.name for r in ALL_READINGS])
def test_conservative_plan_covers_what_every_reading_deletes(sem_emu, prefect_api_url, tmp_path, monkeypatch,
                                                               reading):
    state, folder, deleted, config = _run(sem_emu, tmp_path, monkeypatch, "conservative", reading)

    assert state.is_completed(), state.message
    summary = summary_of(folder)
    assert summary["state"] == "GC_DONE"
    assert summary["checks"]["unexpected_deletions"] == 0
    assert summary["checks"]["missed_deletions"] == 0  # every `certain` tag went
    # The dataset tells the eight readings apart, so exactly the one played agrees.
    assert summary["checks"]["readings_consistent"] == [reading.name]
    assert json.loads(ledger_rows(config, folder.name)["run"].checks_json)["readings_consistent"] == [reading.name]

    # Every tag the cloud deleted was written to deleted_tags.csv before GC and was gated
    # (a way back, or allowed); certain ⊆ deleted ⊆ certain ∪ possible.
    gated = {f"{r['namespace']}/{r['repo']}:{r['tag']}": r for r in csv_rows(folder / "deleted_tags.csv")}
    assert deleted and deleted <= set(gated)
    assert all(gated[key]["regenerable_by"] not in ("", "none") for key in deleted)
    plan = {f"{r['namespace']}/{r['repo']}:{r['tag']}": r for r in csv_rows(folder / "plan.csv")}
    certain = {key for key, r in plan.items() if r["certainty"] == "certain"}
    possible = {key for key, r in plan.items() if r["certainty"] == "possible"}
    assert certain <= deleted <= certain | possible
    assert set(gated) == certain | possible
    assert summary["plan"]["tags_possible"] == len(possible) > 0
    assert summary["plan"]["bytes_expected"] <= summary["plan"]["bytes_expected_max"]

    DELETED_BY_READING[reading.name] = frozenset(deleted)
    CERTAINTY_WRITTEN[reading.name] = {key: r["certainty"] for key, r in gated.items()}
    if len(DELETED_BY_READING) == len(ALL_READINGS):  # the dataset really discriminates
        assert len(set(DELETED_BY_READING.values())) == len(ALL_READINGS)
        # deleted_tags.csv's certainty against the cloud: `certain` is what all eight readings
        # deleted, `possible` what some but not all did
        by_all = frozenset.intersection(*DELETED_BY_READING.values())
        by_some = frozenset.union(*DELETED_BY_READING.values())
        for written in CERTAINTY_WRITTEN.values():
            assert {k for k, v in written.items() if v == "certain"} == by_all
            assert {k for k, v in written.items() if v == "possible"} == by_some - by_all


@pytest.mark.parametrize("reading", ALL_READINGS, ids=[r.name for r in ALL_READINGS])
def test_pinned_reading_plans_exactly_what_the_cloud_deletes(sem_emu, prefect_api_url, tmp_path, monkeypatch,
                                                             reading):
    state, folder, deleted, _ = _run(sem_emu, tmp_path, monkeypatch, _played(reading), reading)

    assert state.is_completed(), state.message
    plan = csv_rows(folder / "plan.csv")
    assert {r["certainty"] for r in plan} <= {"certain", ""}  # nothing merely possible
    planned = {f"{r['namespace']}/{r['repo']}:{r['tag']}" for r in plan if r["expired"] == "True"}
    assert planned == deleted
    summary = summary_of(folder)
    assert summary["plan"]["tags_possible"] == 0
    assert summary["checks"]["readings_consistent"] == [reading.name]


def test_learned_second_run_plans_with_the_reading_the_first_observed(sem_emu, prefect_api_url, tmp_path,
                                                                      monkeypatch):
    played = Reading("each-rule", "count-among-matching", "partial")
    state, first, deleted_first, _ = _run(sem_emu, tmp_path, monkeypatch, "learned", played, ledger_root=tmp_path)
    assert state.is_completed(), state.message
    # no history yet: learned falls back to conservative
    assert summary_of(first)["plan"]["tags_possible"] > 0
    assert summary_of(first)["checks"]["readings_consistent"] == [played.name]

    state, second, deleted_second, _ = _run(sem_emu, tmp_path, monkeypatch, "learned", played,
                                            ledger_root=tmp_path)
    assert state.is_completed(), state.message
    plan = csv_rows(second / "plan.csv")
    assert summary_of(second)["plan"]["tags_possible"] == 0
    assert {f"{r['namespace']}/{r['repo']}:{r['tag']}" for r in plan if r["expired"] == "True"} == deleted_second
    assert deleted_second == deleted_first


def test_a_tag_skipped_while_paging_fails_the_run_before_any_change(sem_emu, prefect_api_url, tmp_path,
                                                                    monkeypatch):
    """A proxy drops apps/web:old from every ListRepoTag answer (TotalCount untouched): the
    listing never adds up, is read again, then the run fails -- no freeze, no GC."""
    sem_emu.load(semantics_dataset())
    before = sem_emu.truth()
    with RecordingProxy(sem_emu.acr_endpoint, "acr", drop_rows={"ListRepoTag": ("Images", "Tag", "old")}) as proxy:
        config = config_dict((proxy.endpoint, sem_emu.oss_endpoint), tmp_path, INSTANCE, BUCKET,
                             policy={"semantics": "conservative", "max_delete_share": 1.0,
                                     "allow_emptied": ALL_REPOS})
        state, folder = run_flow(config, monkeypatch)
        tag_reads = [r for r in proxy.snapshot() if r[4] == "ListRepoTag"]

    assert state.is_failed()
    assert "ListRepoTag apps/web" in state.message and "TotalCount" in state.message, state.message
    assert len(tag_reads) >= 3 + 2  # apps/web read three times, the two other repositories once
    after = sem_emu.truth()
    assert _tags(after) == _tags(before)
    assert after["instances"][INSTANCE]["gc_tasks"] == []
    assert after["buckets"][BUCKET]["policy"] == before["buckets"][BUCKET]["policy"]
    rows = ledger_rows(config, folder.name)
    assert rows["freezes"] == [] and rows["gc_tasks"] == []


def test_blast_radius_count_zero_rule_exits_3_naming_the_repository_and_runs_once_allowed(sem_emu, prefect_api_url,
                                                                                         tmp_path):
    data = semantics_dataset()
    data["instances"][0]["lifecycle_rules"] = [{"scope": "REPO", "namespace": "apps", "repo": "api",
                                                "retention_tag_count": 0}]
    sem_emu.load(data)
    before = _tags(sem_emu.truth())
    config = config_dict((sem_emu.acr_endpoint, sem_emu.oss_endpoint), tmp_path, INSTANCE, BUCKET)
    blocked = run_cli(["run", "--config", str(write_config(config, tmp_path / "blocked.yaml"))],
                      cli_env(prefect_api_url))
    assert blocked.returncode == 3, blocked.stderr[-2000:]
    assert "apps/api" in blocked.stderr and "policy.allow_emptied" in blocked.stderr
    assert summary_of(Path(blocked.stdout.strip().splitlines()[-1]))["state"] == "BLOCKED"
    assert _tags(sem_emu.truth()) == before

    config["policy"]["allow_emptied"] = ["apps/api"]
    allowed = run_cli(["run", "--config", str(write_config(config, tmp_path / "allowed.yaml"))],
                      cli_env(prefect_api_url))
    assert allowed.returncode == 0, allowed.stderr[-2000:]
    assert before - _tags(sem_emu.truth()) == {f"apps/api:{t}" for t in REPOS[("apps", "api")]}
