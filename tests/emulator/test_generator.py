"""The dataset generator and the bundled demo dataset.

The retention (DESIGN section 3) and regenerability (section 4) checks below are a
deliberately plain, brute-force re-statement of the design over the dataset dict; they
share no code with the generator, the planner or the emulator.
"""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import datetime
from pathlib import Path

import pytest

from acr_gc.config import load_config
from acr_gc.emulator import generator
from acr_gc.emulator.dataset import Dataset

DATA = Path(generator.__file__).parent / "data"
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
KINDS = ("alias", "replica", "build-rule", "manifest", "none")


# --------------------------------------------------------------------------- reference model


def _ts(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _glob(pattern: str, text: str) -> bool:
    """`*` matches any run of characters; everything else is literal."""
    regex = ".*".join(re.escape(part) for part in pattern.split("*"))
    return re.fullmatch(regex, text) is not None


def _applying_rules(instance: dict, repo: dict) -> list[dict]:
    out = []
    for rule in instance["lifecycle_rules"]:
        if rule.get("enable_delete_tag", True) is False:
            continue
        scope = rule["scope"]
        if (
            scope == "INSTANCE"
            or (scope == "NAMESPACE" and rule.get("namespace") == repo["namespace"])
            or (scope == "REPO" and rule.get("namespace") == repo["namespace"] and rule.get("repo") == repo["name"])
        ):
            out.append(rule)
    return out


def _expired_tags(instance: dict, repo: dict) -> set[str]:
    rules = _applying_rules(instance, repo)
    if not rules:
        return set()
    ordered = sorted(repo["tags"], key=lambda t: (-_ts(t["updated"]), t["tag"]))
    expired = set()
    for position, tag in enumerate(ordered):
        retained = False
        for rule in rules:
            count = rule.get("retention_tag_count")
            if count is not None and position < count:
                retained = True
            regexp = rule.get("tag_regexp")
            if regexp is not None and re.fullmatch(regexp, tag["tag"]):
                retained = True
        if not retained:
            expired.add(tag["tag"])
    return expired


def _instance(dataset: dict, instance_id: str) -> dict:
    return next(i for i in dataset["instances"] if i["instance_id"] == instance_id)


def _regenerable_by(dataset: dict, instance: dict, repo: dict, tag: dict, expired: set[str], manifest) -> str:
    for other in repo["tags"]:
        if other["tag"] not in expired and other["digest"] == tag["digest"]:
            return "alias"
    for sync in repo["sync_rules"]:
        targets = [i for i in dataset["instances"] if i["instance_id"] == sync["target_instance_id"]]
        for target in targets:
            for copy in target["repositories"]:
                if copy["namespace"] == sync["target_namespace"] and copy["name"] == sync["target_repo"]:
                    for t in copy["tags"]:
                        if t["tag"] == tag["tag"] and t["digest"] == tag["digest"]:
                            return "replica"
    if repo["source_code"] is not None:
        for rule in repo["build_rules"]:
            if _glob(rule["image_tag"], tag["tag"]):
                return "build-rule"
    for row in manifest:
        if row["namespace"] == repo["namespace"] and row["repo"] == repo["name"] and _glob(row["tag_glob"], tag["tag"]):
            return "manifest"
    return "none"


def _plan(dataset: dict, instance_id: str, manifest=()) -> dict:
    """Tags, expired tags with their verdicts, bucket bytes and expected freed bytes."""
    instance = _instance(dataset, instance_id)
    layers = dataset["layers"]
    verdicts: dict[tuple[str, str, str], str] = {}
    tags_total = 0
    ruleless = []
    surviving_digests, all_digests = set(), set()
    expired_links = 0
    for repo in instance["repositories"]:
        if not _applying_rules(instance, repo):
            ruleless.append(f"{repo['namespace']}/{repo['name']}")
        expired = _expired_tags(instance, repo)
        tags_total += len(repo["tags"])
        for tag in repo["tags"]:
            all_digests.add(tag["digest"])
            if tag["tag"] in expired:
                expired_links += len(tag["digest"])
                verdicts[(repo["namespace"], repo["name"], tag["tag"])] = _regenerable_by(
                    dataset, instance, repo, tag, expired, manifest
                )
            else:
                surviving_digests.add(tag["digest"])
    digest_layers = {}
    for repo in instance["repositories"]:
        for tag in repo["tags"]:
            digest_layers[tag["digest"]] = tag["layers"]
    all_layers = {layer for d in all_digests for layer in digest_layers[d]}
    kept_layers = {layer for d in surviving_digests for layer in digest_layers[d]}
    bucket = next(b for b in dataset["buckets"] if b["name"] == instance["bucket"])
    bucket_bytes = (
        sum(layers[layer] for layer in all_layers)
        + 1024 * len(all_digests)
        + sum(len(t["digest"]) for repo in instance["repositories"] for t in repo["tags"])
        + sum(o["size"] for o in bucket["extra_objects"])
        + sum(v["size"] for chart in instance["charts"] for v in chart["versions"])
    )
    freed = (
        sum(layers[layer] for layer in all_layers - kept_layers)
        + 1024 * len(all_digests - surviving_digests)
        + expired_links
    )
    counts = {kind: 0 for kind in KINDS}
    for verdict in verdicts.values():
        counts[verdict] += 1
    return {
        "tags_total": tags_total,
        "verdicts": verdicts,
        "counts": counts,
        "ruleless": ruleless,
        "bucket_bytes": bucket_bytes,
        "freed_bytes": freed,
    }


def _manifest_rows(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


# --------------------------------------------------------------------------- the reference model itself


def test_reference_model_on_a_hand_made_repository():
    dataset = {
        "instances": [
            {
                "instance_id": "a",
                "bucket": "b",
                "charts": [],
                "lifecycle_rules": [
                    {"scope": "NAMESPACE", "namespace": "ns", "retention_tag_count": 1, "tag_regexp": r"v\d+"},
                    {"scope": "INSTANCE", "retention_tag_count": 0, "enable_delete_tag": False},
                ],
                "repositories": [
                    {
                        "namespace": "ns",
                        "name": "r",
                        "source_code": {"type": "GITHUB", "namespace": "ns", "name": "r"},
                        "build_rules": [{"push_type": "GIT_BRANCH", "push_name": "main", "image_tag": "sha-*"}],
                        "sync_rules": [],
                        "tags": [
                            {"tag": "new", "digest": "d1", "updated": "2026-01-03T00:00:00Z", "layers": ["l1"]},
                            {"tag": "v1", "digest": "d2", "updated": "2026-01-01T00:00:00Z", "layers": ["l2"]},
                            {"tag": "a", "digest": "d2", "updated": "2026-01-02T00:00:00Z", "layers": ["l2"]},
                            {"tag": "sha-1", "digest": "d3", "updated": "2026-01-02T00:00:00Z", "layers": ["l3"]},
                            {"tag": "old", "digest": "d4", "updated": "2025-01-01T00:00:00Z", "layers": ["l1", "l4"]},
                        ],
                    },
                    {"namespace": "other", "name": "x", "source_code": None, "build_rules": [], "sync_rules": [],
                     "tags": [{"tag": "t", "digest": "d9", "updated": "2020-01-01T00:00:00Z", "layers": ["l9"]}]},
                ],
            }
        ],
        "layers": {"l1": 10, "l2": 20, "l3": 30, "l4": 40, "l9": 90},
        "buckets": [{"name": "b", "extra_objects": []}],
    }
    plan = _plan(dataset, "a", [{"namespace": "ns", "repo": "r", "tag_glob": "ol*", "source": "x"}])
    assert plan["verdicts"] == {
        ("ns", "r", "a"): "alias",
        ("ns", "r", "sha-1"): "build-rule",
        ("ns", "r", "old"): "manifest",
    }
    assert plan["ruleless"] == ["other/x"]
    # d3 and d4 are gone: l3 and l4 freed (l1 is still used by d1), two manifests, three links.
    assert plan["freed_bytes"] == 30 + 40 + 2 * 1024 + 3 * 2
    assert plan["bucket_bytes"] == (10 + 20 + 30 + 40 + 90) + 5 * 1024 + 6 * 2


# --------------------------------------------------------------------------- generate()


def test_same_arguments_give_identical_json_and_another_seed_differs():
    first = json.dumps(generator.generate(repos=30, tags_per_repo=25, seed=7))
    again = json.dumps(generator.generate(repos=30, tags_per_repo=25, seed=7))
    other = json.dumps(generator.generate(repos=30, tags_per_repo=25, seed=8))
    assert first == again
    assert first != other


@pytest.mark.parametrize(("repos", "tags"), [(1, 0), (1, 1), (2, 2), (7, 3), (30, 25), (120, 60)])
def test_generated_dataset_is_valid_and_has_exact_counts(repos, tags):
    data = generator.generate(repos=repos, tags_per_repo=tags, seed=3)
    Dataset.model_validate(data)
    json.dumps(data)  # JSON-serialisable as is
    main = _instance(data, "cri-gen")
    assert main["bucket"] == "cri-gen-storage" and main["gc_whitelisted"] is True
    assert len(main["repositories"]) == repos
    assert all(len(repo["tags"]) == tags for repo in main["repositories"])
    assert len(main["namespaces"]) == max(2, round(repos / 50))
    for repo in main["repositories"]:
        names = [t["tag"] for t in repo["tags"]]
        assert len(names) == len(set(names))
        for tag in repo["tags"]:
            assert DIGEST.fullmatch(tag["digest"])
            assert tag["layers"] and all(DIGEST.fullmatch(layer) for layer in tag["layers"])
    assert all(DIGEST.fullmatch(d) and size > 0 for d, size in data["layers"].items())


def test_generated_dataset_shape():
    data = generator.generate(repos=120, tags_per_repo=60, seed=11)
    main = _instance(data, "cri-gen")
    replica = _instance(data, "cri-gen-replica")
    assert {ns for ns in main["namespaces"]} >= {r["namespace"] for r in main["repositories"]}
    # Every scope, counts and regexps, a disabled rule.
    rules = main["lifecycle_rules"]
    assert {r["scope"] for r in rules} == {"INSTANCE", "NAMESPACE", "REPO"}
    assert any(r["retention_tag_count"] for r in rules) and any(r["tag_regexp"] for r in rules)
    assert any(r["enable_delete_tag"] is False for r in rules)
    # Build rules on a share of repositories, sync rules to the replica.
    built = [r for r in main["repositories"] if r["source_code"] and r["build_rules"]]
    assert 0.2 * len(main["repositories"]) < len(built) < len(main["repositories"])
    synced = [r for r in main["repositories"] if r["sync_rules"]]
    assert synced and all(s["target_instance_id"] == "cri-gen-replica" for r in synced for s in r["sync_rules"])
    copies = {(r["namespace"], r["name"]): {t["tag"]: t["digest"] for t in r["tags"]} for r in replica["repositories"]}
    same = differ = 0
    for repo in synced:
        rule = repo["sync_rules"][0]
        copy = copies[(rule["target_namespace"], rule["target_repo"])]
        for tag in repo["tags"]:
            if tag["tag"] in copy:
                same += copy[tag["tag"]] == tag["digest"]
                differ += copy[tag["tag"]] != tag["digest"]
    assert same > 0 and differ >= 1
    # Tag names, aliases and times.
    all_tags = [t for r in main["repositories"] for t in r["tags"]]
    names = [t["tag"] for t in all_tags]
    for pattern in (r"v\d+\.\d+\.\d+", r"release-\d{4}\.\d{2}\.\d{2}", r"sha-[0-9a-f]{7}", "latest", r"dev-.+"):
        assert any(re.fullmatch(pattern, n) for n in names), pattern
    assert any(len({t["digest"] for t in r["tags"]}) < len(r["tags"]) for r in main["repositories"])
    clock = _ts(data["clock"])
    times = [_ts(t["updated"]) for t in all_tags]
    assert max(times) < clock and clock - min(times) > 300 * 86400 and clock - min(times) < 366 * 86400
    # Sizes: shared base layers, long-tailed app layers.
    sizes = sorted(data["layers"].values())
    assert 1_000_000 <= sizes[len(sizes) // 2] <= 50_000_000
    assert sum(s > 200_000_000 for s in sizes) >= 1
    usage: dict[str, int] = {}
    for repo in main["repositories"]:
        for layer in {layer for t in repo["tags"] for layer in t["layers"]}:
            usage[layer] = usage.get(layer, 0) + 1
    assert sum(1 for n in usage.values() if n >= 5) >= 3  # base layers shared by many repositories
    assert main["charts"] and all(c["versions"] for c in main["charts"])
    bucket = next(b for b in data["buckets"] if b["name"] == "cri-gen-storage")
    assert bucket["versioning"] == "Enabled"
    assert bucket["lifecycle"] == [{"id": "noncurrent-expiry", "prefix": "docker/", "noncurrent_days": 3}]
    assert bucket["extra_objects"]
    principals = [c["principal"] for c in data["credentials"]]
    assert principals == ["acs:ram::1234567890:root", "acs:ram::1234567890:user/ci-pusher"]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_generated_dataset_passes_the_gate(seed):
    data = generator.generate(repos=80, tags_per_repo=70, seed=seed)
    plan = _plan(data, "cri-gen")
    assert plan["counts"]["none"] == 0, [k for k, v in plan["verdicts"].items() if v == "none"][:5]
    assert plan["counts"]["alias"] and plan["counts"]["replica"] and plan["counts"]["build-rule"]
    assert 0.05 < sum(plan["counts"].values()) / plan["tags_total"] < 0.8


def test_hundred_thousand_tags():
    data = generator.generate(repos=1000, tags_per_repo=100, seed=0)
    main = _instance(data, "cri-gen")
    assert len(main["repositories"]) == 1000
    assert sum(len(r["tags"]) for r in main["repositories"]) == 100_000
    assert len(main["namespaces"]) == 20
    referenced = {layer for r in main["repositories"] for t in r["tags"] for layer in t["layers"]}
    assert referenced <= data["layers"].keys()
    assert len(json.dumps(data)) < 100_000_000


# --------------------------------------------------------------------------- the demo


@pytest.fixture(scope="module")
def demo() -> dict:
    return generator.demo_dataset()


@pytest.fixture(scope="module")
def demo_plan(demo) -> dict:
    manifest = _manifest_rows((DATA / "demo-regeneration.csv").read_text(encoding="utf-8"))
    return _plan(demo, "cri-demo", manifest)


def test_committed_demo_files_match_the_generator(demo):
    text = (DATA / "demo.json").read_text(encoding="utf-8")
    assert json.loads(text) == demo
    assert text == generator.dump_json(demo)
    assert generator.demo_dataset() == demo  # deterministic
    csv_text = (DATA / "demo-regeneration.csv").read_text(encoding="utf-8")
    assert csv_text == generator.demo_regeneration_csv()
    assert csv_text.splitlines()[0] == "namespace,repo,tag_glob,source"


def test_demo_is_valid_and_shaped_as_designed(demo):
    Dataset.model_validate(demo)
    main, dr = _instance(demo, "cri-demo"), _instance(demo, "cri-demo-dr")
    assert main["gc_whitelisted"] is True and main["bucket"] == "cri-demo-storage"
    assert dr["bucket"] == "cri-demo-dr-storage" and dr["bucket"] in {b["name"] for b in demo["buckets"]}
    assert set(main["namespaces"]) >= {"platform", "payments", "data", "web"}
    tags = sum(len(r["tags"]) for r in main["repositories"])
    assert 2000 <= tags <= 5000
    assert all(30 <= len(r["tags"]) <= 120 for r in main["repositories"])
    assert {r["scope"] for r in main["lifecycle_rules"] if r["enable_delete_tag"]} >= {"NAMESPACE", "REPO"}
    assert {r["scope"] for r in main["lifecycle_rules"]} == {"INSTANCE", "NAMESPACE", "REPO"}
    assert any(r["enable_delete_tag"] is False for r in main["lifecycle_rules"])
    assert any(r["source_code"] and r["build_rules"] for r in main["repositories"])
    assert any(c["versions"] for c in main["charts"])  # the chart repository is present
    bucket = next(b for b in demo["buckets"] if b["name"] == "cri-demo-storage")
    assert bucket["versioning"] == "Enabled"
    assert {"id": "noncurrent-expiry", "prefix": "docker/", "noncurrent_days": 3} in bucket["lifecycle"]
    assert [c["principal"] for c in demo["credentials"]] == [
        "acs:ram::1234567890:root",
        "acs:ram::1234567890:user/ci-pusher",
    ]
    # The replica target holds some copies with another digest (the gate must compare digests).
    copies = {(r["namespace"], r["name"]): {t["tag"]: t["digest"] for t in r["tags"]} for r in dr["repositories"]}
    differ = 0
    for repo in main["repositories"]:
        for rule in repo["sync_rules"]:
            copy = copies[(rule["target_namespace"], rule["target_repo"])]
            differ += sum(1 for t in repo["tags"] if t["tag"] in copy and copy[t["tag"]] != t["digest"])
    assert differ >= 1


def test_demo_expires_a_meaningful_share_and_everything_expired_is_regenerable(demo_plan):
    plan = demo_plan
    expired = sum(plan["counts"].values())
    assert 0.3 <= expired / plan["tags_total"] <= 0.6
    assert plan["counts"]["none"] == 0, [k for k, v in plan["verdicts"].items() if v == "none"][:5]
    for kind in ("alias", "replica", "build-rule", "manifest"):
        assert plan["counts"][kind] >= 1, kind
    assert plan["ruleless"], "some repository must have no applying rule"
    assert plan["freed_bytes"] >= 0.3 * plan["bucket_bytes"]


def test_demo_gate_needs_the_manifest(demo):
    """Without the operator's manifest the demo's gate would block: the CSV matters."""
    plan = _plan(demo, "cri-demo", manifest=())
    assert plan["counts"]["none"] > 0


def test_demo_config_is_a_valid_draft():
    path = DATA / "demo-config.yaml"
    config = load_config(path)
    assert config.target.instance_id == "cri-demo"
    assert config.target.bucket == "cri-demo-storage"
    assert config.target.acr_endpoint is None and config.target.oss_endpoint is None
    assert config.gc.driver == "emulator"
    assert config.sampling.mode == "inline"
    assert config.policy.regeneration_manifest is not None
    assert config.policy.regeneration_manifest.name == "demo-regeneration.csv"
