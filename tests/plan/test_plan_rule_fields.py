"""Every lifecycle rule field, and replicas that really hold a copy (issue 11), hand-worked.

The ``plan_instance`` flow runs in this process on the session's Prefect server, against
the emulator through the real SDK; plan.csv is compared row by row with verdicts worked
out by hand here (conservative default: every reading planned).

* cri-dry: a DryRun rule deletes nothing (only the INSTANCE count 3 rule counts);
* cri-pol: rules with Policies only -- a wildcard + LatestTagCount policy makes only the
  tags beyond its newest matches ``possible``; a last-pull policy makes every tag
  ``possible`` (pull times are not in the API);
* cri-untag: EnableDeleteUntaggedManifest and an Auto rule, named in the rule table;
* cri-norepo: REPO scope without RepoName = every repository of the namespace;
* cri-src: expired tags whose copies live on sync targets: cri-keep (no rules: the copy
  is kept -> ``replica``), cri-gone (its own rule expires the copy -> ``none``), and a sync
  rule back into cri-src itself (never a replica).
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from dataset_kit import digest, layer
from emulator_kit import new_emulator

AK, SECRET = "LTAI-plan-rule-fields", "plan-rule-fields-secret"
CLOCK = "2026-11-01T00:00:00Z"


def repo(ns: str, name: str, tags: list[str], build=False, sync_rules=(), image_prefix: str = "") -> dict:
    """``tags`` newest first, one day apart, each its own image (with ``image_prefix``: the
    same image for the same tag name in every repository using that prefix, as a copy)."""
    return {
        "namespace": ns, "name": name,
        "source_code": {"type": "GITHUB", "namespace": "acme", "name": "code"} if build else None,
        "build_rules": [{"push_type": "GIT_BRANCH", "push_name": "main", "image_tag": "*"}] if build else [],
        "sync_rules": list(sync_rules),
        "tags": [{"tag": t, "digest": digest(f"{image_prefix}:{t}" if image_prefix else f"{ns}/{name}:{t}"),
                  "updated": f"2026-10-{30 - i:02d}T00:00:00Z", "layers": [layer("base")]}
                 for i, t in enumerate(tags)],
    }


def instance(instance_id: str, namespaces: list[str], repositories: list[dict], rules: list[dict]) -> dict:
    return {"instance_id": instance_id, "name": instance_id, "region": "cn-hangzhou", "gc_whitelisted": True,
            "bucket": f"{instance_id}-storage", "namespaces": namespaces, "repositories": repositories,
            "charts": [], "lifecycle_rules": rules}


SYNC = lambda target, ns="apps", name="web": {"target_instance_id": target, "target_namespace": ns,  # noqa: E731
                                              "target_repo": name}

INSTANCES = [
    instance("cri-dry", ["apps"], [repo("apps", "web", ["n1", "n2", "n3", "n4"], build=True)], [
        {"scope": "REPO", "namespace": "apps", "repo": "web", "retention_tag_count": 1, "dry_run": True},
        {"scope": "INSTANCE", "retention_tag_count": 3},
    ]),
    instance("cri-pol", ["apps"], [repo("apps", "web", ["dev-4", "main", "dev-3", "dev-2", "dev-1"], build=True),
                                   repo("apps", "api", ["a2", "a1"], build=True)], [
        {"scope": "REPO", "namespace": "apps", "repo": "web", "policies": [
            {"type": "DELETE", "condition": {"latest_tag_count": 2}, "filter": {"tag_wildcard": "dev-*"}}]},
        {"scope": "REPO", "namespace": "apps", "repo": "api", "policies": [
            {"condition": {"last_pull_older_than_days": 30}}]},
    ]),
    instance("cri-untag", ["apps"], [repo("apps", "web", ["u1", "u2", "u3"], build=True)], [
        {"scope": "REPO", "namespace": "apps", "repo": "web", "retention_tag_count": 2,
         "enable_delete_untagged_manifest": True},
        # runs by itself (Auto); its NextTime is after the emulated clock, so it has not run yet
        {"scope": "REPO", "namespace": "apps", "repo": "web", "retention_tag_count": 2, "tag_regexp": "u.*",
         "auto": True, "schedule_time": "WEEK", "next_time": "2026-12-01T00:00:00Z"},
    ]),
    instance("cri-norepo", ["apps", "infra"], [repo("apps", "web", ["w1", "w2"], build=True),
                                               repo("apps", "api", ["a1", "a2", "a3"], build=True),
                                               repo("infra", "base", ["b1", "b2"])], [
        {"scope": "REPO", "namespace": "apps", "retention_tag_count": 1},
    ]),
    # source: keep 1; r2, r3 and p2 expired, no build rule, copies on the sync targets
    instance("cri-src", ["apps"], [repo("apps", "web", ["r1", "r2", "r3"], image_prefix="src",
                                        sync_rules=[SYNC("cri-keep"), SYNC("cri-src", "apps", "web-copy")]),
                                   repo("apps", "web-copy", ["r2"], image_prefix="src"),
                                   repo("apps", "api", ["p1", "p2"], image_prefix="src",
                                        sync_rules=[SYNC("cri-gone", "apps", "api")])], [
        {"scope": "INSTANCE", "retention_tag_count": 1},
    ]),
    # holds copies of r1 and r3 only: r2's one copy is in cri-src itself
    instance("cri-keep", ["apps"], [repo("apps", "web", ["r1", "r3"], image_prefix="src")], []),
    # its own rule keeps only the newest: the copy of p2 goes with cri-gone's next GC
    instance("cri-gone", ["apps"], [repo("apps", "api", ["p1", "p2"], image_prefix="src")], [
        {"scope": "INSTANCE", "retention_tag_count": 1},
    ]),
]

DATASET = {
    "clock": CLOCK,
    "credentials": [{"access_key_id": AK, "access_key_secret": SECRET, "principal": "uid-plan-1"}],
    "layers": {layer("base"): 1000},
    "instances": INSTANCES,
    "buckets": [{"name": f"{i['instance_id']}-storage", "versioning": None, "lifecycle": [], "policy": None,
                 "extra_objects": []} for i in INSTANCES],
}

# (ns, repo, tag, expired, certainty, regenerable_by), plan.csv order (namespace, repo, tag)
EXPECTED = {
    "cri-dry": [
        ("apps", "web", "n1", False, "", ""), ("apps", "web", "n2", False, "", ""),
        ("apps", "web", "n3", False, "", ""), ("apps", "web", "n4", True, "certain", "build-rule"),
    ],
    "cri-pol": [
        ("apps", "api", "a1", True, "possible", "build-rule"), ("apps", "api", "a2", True, "possible", "build-rule"),
        ("apps", "web", "dev-1", True, "possible", "build-rule"),
        ("apps", "web", "dev-2", True, "possible", "build-rule"),
        ("apps", "web", "dev-3", False, "", ""), ("apps", "web", "dev-4", False, "", ""),
        ("apps", "web", "main", False, "", ""),
    ],
    "cri-untag": [
        ("apps", "web", "u1", False, "", ""), ("apps", "web", "u2", False, "", ""),
        # count-or-match + any-retains: the Auto rule's u.* keeps u3; every other reading drops it
        ("apps", "web", "u3", True, "possible", "build-rule"),
    ],
    "cri-norepo": [
        ("apps", "api", "a1", False, "", ""), ("apps", "api", "a2", True, "certain", "build-rule"),
        ("apps", "api", "a3", True, "certain", "build-rule"),
        ("apps", "web", "w1", False, "", ""), ("apps", "web", "w2", True, "certain", "build-rule"),
        ("infra", "base", "b1", False, "", ""), ("infra", "base", "b2", False, "", ""),
    ],
    "cri-src": [
        ("apps", "api", "p1", False, "", ""),
        ("apps", "api", "p2", True, "certain", "none"),  # cri-gone's own rule expires its copy
        ("apps", "web", "r1", False, "", ""),
        ("apps", "web", "r2", True, "certain", "none"),  # its only copy is in cri-src itself
        ("apps", "web", "r3", True, "certain", "replica"),  # cri-keep (no rules) keeps its copy
        ("apps", "web-copy", "r2", False, "", ""),
    ],
}


@pytest.fixture(scope="module")
def emu():
    with new_emulator(DATASET) as process:
        yield process


def _plan(emu, tmp_path: Path, monkeypatch, instance_id: str, **policy):
    from acr_gc.config import Config
    from acr_gc.flows.plan import plan_instance

    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", AK)
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", SECRET)
    config = Config.model_validate({
        "target": {"instance_id": instance_id, "bucket": f"{instance_id}-storage",
                   "acr_endpoint": emu.acr_endpoint, "oss_endpoint": emu.oss_endpoint},
        "policy": {"max_delete_share": 1.0, **policy},
        "report": {"out_dir": str(tmp_path / "out")},
        "ledger": {"url": f"sqlite:///{tmp_path / 'ledger.db'}"},
        "freeze": {"principals": ["acs:ram::1001:user/pusher"]},
        "api": {"qps": 100, "concurrency": 2, "retries": 2},
    })
    return plan_instance(config)


def _rows(folder: Path) -> list[tuple]:
    with open(folder / "plan.csv", newline="", encoding="utf-8") as handle:
        return [(r["namespace"], r["repo"], r["tag"], r["expired"] == "True", r["certainty"], r["regenerable_by"])
                for r in csv.DictReader(handle)]


@pytest.mark.parametrize("instance_id", list(EXPECTED))
def test_plan_csv_row_by_row(emu, prefect_api_url, tmp_path, monkeypatch, instance_id):
    outcome = _plan(emu, tmp_path, monkeypatch, instance_id, allow_emptied=["apps/api"])
    assert _rows(outcome.folder) == EXPECTED[instance_id]


def test_rule_table_names_dry_run_policies_untagged_manifests_and_auto_rules(emu, prefect_api_url, tmp_path,
                                                                            monkeypatch):
    dry = _plan(emu, tmp_path, monkeypatch, "cri-dry").result.rule_table
    assert list(dry["effect"]) == ["dry-run (deletes nothing)", "deletes tags"]
    pol = _plan(emu, tmp_path, monkeypatch, "cri-pol", allow_emptied=["apps/api"]).result.rule_table
    assert list(pol["policies"]) == [1, 1]
    untag = _plan(emu, tmp_path, monkeypatch, "cri-untag").result.rule_table
    assert list(untag["untagged_manifests"]) == [True, False]
    assert list(untag["runs_by_itself"]) == [False, True]
    assert list(untag["next_time"]) == [None, "2026-12-01T00:00:00Z"]


def test_auto_rule_runs_by_itself_when_its_time_comes(emu):
    """The emulator's own scheduled run: at NextTime the Auto rule of cri-untag deletes
    what it alone expires (any-retains: what no other applying rule keeps either)."""
    emu.load(DATASET)
    try:
        assert sorted(emu.truth()["instances"]["cri-untag"]["tags"]["apps/web"]) == ["u1", "u2", "u3"]
        emu.advance_clock(31)  # past 2026-12-01
        assert sorted(emu.truth()["instances"]["cri-untag"]["tags"]["apps/web"]) == ["u1", "u2", "u3"]  # u3 kept: regexp u.*
        emu.set_readings(count_regexp="count-among-matching")
        emu.advance_clock(7)  # the next weekly run: the 2 newest among u.* -> u3 goes
        assert sorted(emu.truth()["instances"]["cri-untag"]["tags"]["apps/web"]) == ["u1", "u2"]
    finally:
        emu.load(DATASET)


def test_blast_radius_blocks_a_plan_that_empties_a_repository(emu, prefect_api_url, tmp_path, monkeypatch):
    blocked = _plan(emu, tmp_path, monkeypatch, "cri-pol")
    assert not blocked.result.gate.passed
    assert "apps/api" in blocked.result.gate.blast_radius and "apps/web" not in blocked.result.gate.blast_radius
    allowed = _plan(emu, tmp_path, monkeypatch, "cri-pol", allow_emptied=["apps/api"])
    assert allowed.result.gate.passed
