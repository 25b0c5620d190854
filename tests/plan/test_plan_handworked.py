"""`acr-gc plan` end to end on a dataset small enough to work out by hand.

Real parts only: the emulator as a subprocess, the CLI as a subprocess (real SDKs, real
credential chain from env vars), one real Prefect server for the session. Every expected
value below was worked out by hand from the dataset (comments give the reasoning), never
by calling the planner.

The instance ``cri-hw`` (clock 2026-11-01):

    namespace apps   : web (7 tags), api (5 tags)
    namespace infra  : base (4 tags), proxy (3 tags)
    namespace misc   : tools (2 tags), a chart repository (never planned)

Lifecycle rules of cri-hw (DESIGN section 3):

    INSTANCE  count 1, EnableDeleteTag FALSE   -> ignored (if it were applied, misc/tools:t0
                                                  would expire: misc/tools has no other rule)
    NAMESPACE apps  count 2                    -> apps/web, apps/api
    REPO      apps/web  regexp v\\d+            -> overlaps the apps rule on apps/web
    NAMESPACE infra count 1, regexp stable     -> infra/base, infra/proxy

Every image is ``base layer (10_000 B, shared by every image) + one own layer``, so a tag's
image size is 10_000 + the own layer's size (table ``OWN`` below). The planner does not
know layers (ListRepoTag gives image sizes only), so expected bytes are image sizes counted
once per freed digest: an upper bound (the shared base layer is counted 7 times).

The replica instance ``cri-hw-dr`` (sync target of apps/api -> apps/api-mirror and
infra/proxy -> infra/proxy) is planned too, because it is the only place an ENABLED
INSTANCE-scope rule can be shown: on cri-hw an enabled INSTANCE rule would leave no
repository without a rule.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

from dataset_kit import GITHUB, digest, layer, repo, tag
from emulator_kit import new_emulator

pytestmark = pytest.mark.slow

AK, SECRET = "LTAI-plan-handworked", "plan-handworked-secret"
BASE_LAYER_SIZE = 10_000

# Own layer size of each image (digest name -> bytes). Image size = 10_000 + this.
OWN = {
    "W1": 100, "W2": 200, "W3": 300, "W4": 400, "T1": 500, "T0": 600,
    "A1": 1100, "A2": 1200, "A3": 1300, "A4": 1400, "A5": 1500,
    "B1": 2100, "B2": 2200, "B3": 2300,
    "P0": 3100, "P1": 3200, "P2": 3300,
    "A2x": 9100, "P0x": 9200,  # only on the replica instance: digests that differ from the source's
}



DATASET = {
    "clock": "2026-11-01T00:00:00Z",
    "credentials": [{"access_key_id": AK, "access_key_secret": SECRET, "principal": "ops"}],
    "layers": {layer("base"): BASE_LAYER_SIZE, **{layer(k): v for k, v in OWN.items()}},
    "instances": [
        {
            "instance_id": "cri-hw",
            "name": "handworked",
            "region": "cn-hangzhou",
            "gc_whitelisted": True,
            "bucket": "cri-hw-storage",
            "namespaces": ["apps", "infra", "misc"],
            "repositories": [
                # feat-b is listed before feat-a on purpose: their update times tie, and only
                # the tag-name order (feat-a first) decides which one the count keeps.
                repo("apps", "web", [
                    tag("main", "W1", "2026-10-30T00:00:00Z"),
                    tag("feat-b", "W3", "2026-10-29T12:00:00Z"),
                    tag("feat-a", "W2", "2026-10-29T12:00:00Z"),
                    tag("v1", "W4", "2026-10-01T00:00:00Z"),
                    tag("v1-rc", "T1", "2026-09-30T00:00:00Z"),
                    tag("feat-old", "W2", "2026-09-15T00:00:00Z"),
                    tag("old-main", "W1", "2026-09-01T00:00:00Z"),
                ], source_code=GITHUB, build_rules=["feat-*"]),
                # Build rule r* but NO source-code binding: it must not count.
                repo("apps", "api", [
                    tag("r5", "A5", "2026-10-20T00:00:00Z"),
                    tag("r4", "A4", "2026-10-19T00:00:00Z"),
                    tag("r3", "A3", "2026-10-18T00:00:00Z"),
                    tag("r2", "A2", "2026-10-17T00:00:00Z"),
                    tag("r1", "A1", "2026-10-16T00:00:00Z"),
                ], build_rules=["r*"], sync_rules=[
                    {"target_instance_id": "cri-hw-dr", "target_namespace": "apps", "target_repo": "api-mirror"},
                ]),
                repo("infra", "base", [
                    tag("edge", "B3", "2026-10-25T00:00:00Z"),
                    tag("stable", "B2", "2026-10-01T00:00:00Z"),
                    tag("stable-old", "B1", "2026-09-01T00:00:00Z"),
                    tag("stable-1", "B1", "2026-09-01T00:00:00Z"),
                ], source_code=GITHUB, build_rules=["stable-*"]),
                repo("infra", "proxy", [
                    tag("1.2", "P2", "2026-10-10T00:00:00Z"),
                    tag("1.1", "P1", "2026-10-05T00:00:00Z"),
                    tag("1.0", "P0", "2026-10-01T00:00:00Z"),
                ], sync_rules=[
                    {"target_instance_id": "cri-hw-dr", "target_namespace": "infra", "target_repo": "proxy"},
                ]),
                repo("misc", "tools", [
                    tag("t1", "T1", "2026-10-01T00:00:00Z"),
                    tag("t0", "T0", "2025-01-01T00:00:00Z"),
                ]),
            ],
            "charts": [{"namespace": "misc", "name": "helm-charts", "versions": [{"version": "0.1.0", "size": 5000}]}],
            "lifecycle_rules": [
                {"scope": "INSTANCE", "retention_tag_count": 1, "enable_delete_tag": False},
                {"scope": "NAMESPACE", "namespace": "apps", "retention_tag_count": 2, "enable_delete_tag": True},
                {"scope": "REPO", "namespace": "apps", "repo": "web", "tag_regexp": r"v\d+",
                 "enable_delete_tag": True},
                {"scope": "NAMESPACE", "namespace": "infra", "retention_tag_count": 1, "tag_regexp": "stable",
                 "enable_delete_tag": True},
            ],
        },
        {
            "instance_id": "cri-hw-dr",
            "name": "handworked-dr",
            "region": "cn-shanghai",
            "gc_whitelisted": False,
            "bucket": "cri-hw-dr-storage",
            "namespaces": ["apps", "infra"],
            "repositories": [
                repo("apps", "api-mirror", [
                    tag("r3", "A3", "2026-10-18T00:00:00Z"),   # same digest as the source: a replica
                    tag("r2", "A2x", "2026-10-17T00:00:00Z"),  # same tag, DIFFERENT digest: not one
                ]),
                repo("infra", "proxy", [
                    tag("1.1", "P1", "2026-10-05T00:00:00Z"),   # same digest: a replica
                    tag("1.0", "P0x", "2026-10-01T00:00:00Z"),  # different digest: not one
                ]),
            ],
            "charts": [],
            "lifecycle_rules": [
                {"scope": "INSTANCE", "retention_tag_count": 1, "enable_delete_tag": True},
            ],
        },
    ],
    "buckets": [
        {"name": "cri-hw-storage", "versioning": "Enabled",
         "lifecycle": [{"id": "nc", "prefix": "docker/", "noncurrent_days": 3}], "policy": None,
         "extra_objects": [{"key": "exports/old.csv", "size": 1234}]},
        {"name": "cri-hw-dr-storage", "versioning": None, "lifecycle": [], "policy": None, "extra_objects": []},
    ],
}

# The operator's regeneration manifest (line numbers matter: they appear in the plan).
MANIFEST = (
    "namespace,repo,tag_glob,source\n"          # line 1
    "apps,web,v*-rc,release pipeline web\n"     # line 2: apps/web:v1-rc
    "infra,proxy,1.*,make -C proxy image\n"     # line 3: infra/proxy:1.0 (1.1 is settled earlier, by replica)
    "apps,api,r1,git tag r1\n"                  # line 4: apps/api:r1
)
ALLOW = ["apps/api:r2"]

# plan.csv of cri-hw, row by row (sorted by namespace, repo, tag):
# (namespace, repo, tag, image, expired, regenerable_by)
EXPECTED_ROWS = [
    # apps/api: only the apps rule (count 2). Newest first: r5, r4 kept; r3, r2, r1 expired.
    ("apps", "api", "r1", "A1", True, "manifest"),   # no replica copy; r* build rule has no binding; manifest line 4
    ("apps", "api", "r2", "A2", True, "none"),       # replica has r2 with another digest; no binding; not in manifest
    ("apps", "api", "r3", "A3", True, "replica"),    # cri-hw-dr apps/api-mirror:r3 has the same digest
    ("apps", "api", "r4", "A4", False, ""),
    ("apps", "api", "r5", "A5", False, ""),
    # apps/web: apps rule (count 2) + web rule (v\d+, full match). Order: main, then feat-a and
    # feat-b TIE at 10-29T12:00 and go by name: feat-a 2nd (kept by count), feat-b 3rd.
    ("apps", "web", "feat-a", "W2", False, ""),
    ("apps", "web", "feat-b", "W3", True, "build-rule"),  # bound source + build rule feat-*
    ("apps", "web", "feat-old", "W2", True, "alias"),     # kept feat-a has the same digest (alias wins over feat-*)
    ("apps", "web", "main", "W1", False, ""),
    ("apps", "web", "old-main", "W1", True, "alias"),     # kept main has the same digest
    ("apps", "web", "v1", "W4", False, ""),                # v\d+ matches the whole tag
    ("apps", "web", "v1-rc", "T1", True, "manifest"),      # v\d+ matches only a prefix: not retained; manifest line 2
    # infra/base: infra rule (count 1, regexp "stable" full match). edge is the newest.
    ("infra", "base", "edge", "B3", False, ""),
    ("infra", "base", "stable", "B2", False, ""),
    ("infra", "base", "stable-1", "B1", True, "build-rule"),    # "stable" is only a prefix; bound + stable-*
    ("infra", "base", "stable-old", "B1", True, "build-rule"),
    # infra/proxy: infra rule; 1.2 newest kept.
    ("infra", "proxy", "1.0", "P0", True, "manifest"),  # replica holds 1.0 with another digest; manifest line 3
    ("infra", "proxy", "1.1", "P1", True, "replica"),   # replica holds 1.1 with the same digest
    ("infra", "proxy", "1.2", "P2", False, ""),
    # misc/tools: only the DISABLED instance rule names it -> no rule applies -> every tag kept.
    ("misc", "tools", "t0", "T0", False, ""),
    ("misc", "tools", "t1", "T1", False, ""),
]

# Freed digests (every tag of the digest in cri-hw expired), each counted once:
#   W3 (feat-b)                       apps   10_300
#   A3, A2, A1 (r3, r2, r1)           apps   11_300 + 11_200 + 11_100
#   B1 (stable-old AND stable-1)      infra  12_100 (once, though two tags)
#   P1, P0 (1.1, 1.0)                 infra  13_200 + 13_100
# Not freed: W1 (main kept), W2 (feat-a kept), T1 (v1-rc expired but misc/tools:t1 keeps it).
APPS_BYTES = 10_300 + 11_300 + 11_200 + 11_100   # 43_900
INFRA_BYTES = 12_100 + 13_200 + 13_100           # 38_400
EXPECTED_PLAN = {
    "tags_total": 21,              # 7 + 5 + 4 + 3 + 2; the chart is not a tag
    "tags_expired": 11,            # web 4, api 3, base 2, proxy 2
    "tags_unregenerable": 1,       # apps/api:r2 (allowed, but still `none`)
    # 43_900 + 38_400 = 82_300 from image sizes (the shared base layer counted per image),
    # more than the whole bucket, so the bucket's size is the smaller upper bound:
    #   layers  base 10_000 + own 1_000 (W1-W4) + 500 (T1) + 600 (T0) + 6_500 (A1-A5)
    #           + 6_600 (B1-B3) + 9_600 (P0-P2)                         = 34_800
    #   manifests 17 distinct digests x 1_024                          = 17_408
    #   tag links 21 x 71 ("sha256:" + 64 hex)                         =  1_491
    #   chart helm-charts 0.1.0 5_000 + extra object exports/old.csv 1_234 = 6_234
    #   bucket                                                         = 59_933
    "bytes_expected": 59_933,
    "bytes_expected_is_upper_bound": True,  # layers unknown to the planner
    "bytes_unreferenced_before": None,  # no registry endpoint configured: no exact forecast
    # issue 11: the reading is pinned, so nothing is merely possible and the range is one figure
    "tags_possible": 0,
    "bytes_expected_max": 59_933,
}

# cri-hw-dr: the enabled INSTANCE rule (count 1) applies to both repositories.
#   apps/api-mirror: r3 (10-18) kept, r2 expired -> none (no sync, no build rule)
#   infra/proxy:     1.1 (10-05) kept, 1.0 expired -> none
# Both allow-listed. Freed: A2x (19_100) and P0x (19_200).
EXPECTED_DR_ROWS = [
    ("apps", "api-mirror", "r2", "A2x", True, "none"),
    ("apps", "api-mirror", "r3", "A3", False, ""),
    ("infra", "proxy", "1.0", "P0x", True, "none"),
    ("infra", "proxy", "1.1", "P1", False, ""),
]
EXPECTED_DR_PLAN = {
    "tags_total": 4,
    "tags_expired": 2,
    "tags_unregenerable": 2,
    # 19_100 + 19_200 = 38_300 from image sizes, more than the bucket, which holds
    #   layers base 10_000 + A2x 9_100 + A3 1_300 + P0x 9_200 + P1 3_200 = 32_800
    #   + manifests 4 x 1_024 = 4_096 + tag links 4 x 71 = 284            = 37_180
    "bytes_expected": 37_180,
    "bytes_expected_is_upper_bound": True,
    "bytes_unreferenced_before": None,
    "tags_possible": 0,
    "bytes_expected_max": 37_180,
}

WRITE_ACTIONS = {"DeleteRepoTag", "CreateGarbageCollectionTask", "CancelGarbageCollectionTask",
                 "CreateRepoTag", "DeleteArtifactLifecycleRule", "UpdateArtifactLifecycleRule"}


def _comparable_truth(truth: dict) -> dict:
    """What `plan` must not change: tags, gc tasks, bucket bytes/objects/policy."""
    return {
        "instances": {
            iid: {"tags": inst["tags"], "gc_tasks": inst["gc_tasks"]} for iid, inst in truth["instances"].items()
        },
        "buckets": {
            name: {k: b[k] for k in ("live_bytes", "noncurrent_bytes", "objects", "policy", "versioning")}
            for name, b in truth["buckets"].items()
        },
    }


@pytest.fixture(scope="module")
def world(tmp_path_factory, prefect_api_url, plan_cli):
    """The emulator on DATASET behind two recording proxies, and a config writer."""
    root = tmp_path_factory.mktemp("plan-handworked")
    manifest = root / "regeneration.csv"
    manifest.write_text(MANIFEST, encoding="utf-8")
    with new_emulator(DATASET) as emu, plan_cli.proxy(emu.acr_endpoint, "acr") as acr_proxy, \
            plan_cli.proxy(emu.oss_endpoint, "oss") as oss_proxy:

        def write_config(name: str, instance_id: str, bucket: str, allow: list[str], with_manifest: bool,
                         region: str = "cn-hangzhou") -> Path:
            config = {
                "target": {"region": region, "instance_id": instance_id, "bucket": bucket,
                           "acr_endpoint": acr_proxy.endpoint, "oss_endpoint": oss_proxy.endpoint,
                           "credentials": "chain"},
                # hand-worked under the emulator's default reading, pinned (issue 11 made
                # "conservative" the default); the dataset empties two repositories on purpose
                "policy": {"allow_unregenerable": allow,
                           "regeneration_manifest": str(manifest) if with_manifest else None,
                           "semantics": {"combination": "any-retains", "count_regexp": "count-or-match",
                                         "regexp_match": "full"},
                           "allow_emptied": ["apps/web", "infra/proxy"]},
                "freeze": {"principals": ["acs:ram::1234567890:user/ci-pusher"]},
                "report": {"out_dir": str(root / "out")},
                "api": {"qps": 50, "concurrency": 4, "retries": 2},
            }
            path = root / f"{name}.yaml"
            path.write_text(yaml.safe_dump(config), encoding="utf-8")
            return path

        yield {
            "emu": emu,
            "root": root,
            "proxies": (acr_proxy, oss_proxy),
            "write_config": write_config,
            "env": plan_cli.env(prefect_api_url, AK, SECRET),
            "run": plan_cli.run,
            "truth_before": emu.truth(),
        }


def _plan_rows(folder: Path) -> list[tuple]:
    with open(folder / "plan.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return [
        (r["namespace"], r["repo"], r["tag"], r["digest"], int(r["size"]), r["expired"], r["regenerable_by"])
        for r in rows
    ]


def _expected(rows: list[tuple]) -> list[tuple]:
    return [
        (ns, repo_, tag_, digest(image), BASE_LAYER_SIZE + OWN[image], str(expired), how)
        for ns, repo_, tag_, image, expired, how in rows
    ]


def _folder(stdout: str) -> Path:
    return Path(stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def passing_run(world):
    config = world["write_config"]("pass", "cri-hw", "cri-hw-storage", ALLOW, True)
    return world["run"](["plan", "--config", str(config)], world["env"])


def test_plan_passes_with_handworked_verdicts(passing_run):
    result = passing_run
    assert result.returncode == 0, result.stderr
    folder = _folder(result.stdout)
    assert folder.parent.name == "cri-hw" and folder.is_dir()
    assert _plan_rows(folder) == _expected(EXPECTED_ROWS)

    summary = json.loads((folder / "summary.json").read_text())
    assert summary["plan"] == EXPECTED_PLAN
    assert summary["state"] == "PLANNED"
    assert summary["instance_id"] == "cri-hw" and summary["bucket"] == "cri-hw-storage"
    assert summary["run_id"] == folder.name

    # The terminal table: per namespace tags, expired, unregenerable, expected bytes.
    lines = {line.split()[0]: line.split() for line in result.stdout.splitlines() if line.strip()}
    assert lines["apps"] == ["apps", "12", "7", "1", "42.9", "KiB"]     # 43_900 B
    assert lines["infra"] == ["infra", "7", "4", "0", "37.5", "KiB"]    # 38_400 B
    assert lines["misc"] == ["misc", "2", "0", "0", "0", "B"]
    assert lines["TOTAL"] == ["TOTAL", "21", "11", "1", "58.5", "KiB"]  # 59_933 B: capped at the bucket
    assert "upper bound" in result.stdout
    assert "1 chart repositories" in result.stdout
    assert "BLOCKED" not in result.stderr


def test_plan_blocks_without_the_allow_list_entry(world, passing_run):
    config = world["write_config"]("blocked", "cri-hw", "cri-hw-storage", [], True)
    result = world["run"](["plan", "--config", str(config)], world["env"])
    assert result.returncode == 3, result.stderr
    folder = _folder(result.stdout)
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["state"] == "BLOCKED"
    assert summary["plan"] == EXPECTED_PLAN  # same plan; only the gate differs
    # The plan is written even when blocked, with the same verdicts.
    assert _plan_rows(folder) == _expected(EXPECTED_ROWS)
    listed = [line.strip() for line in result.stderr.splitlines() if line.startswith("  ")]
    assert listed == [f"apps/api:r2 {digest('A2')}"]  # exactly the one blocking tag
    assert "gate BLOCKED: 1 expired tag(s)" in result.stderr


def test_plan_of_the_replica_instance_enabled_instance_rule(world, passing_run):
    config = world["write_config"]("dr", "cri-hw-dr", "cri-hw-dr-storage",
                                   ["apps/api-mirror:r*", "infra/proxy:1.0"], False, region="cn-shanghai")
    result = world["run"](["plan", "--config", str(config)], world["env"])
    assert result.returncode == 0, result.stderr
    folder = _folder(result.stdout)
    assert _plan_rows(folder) == _expected(EXPECTED_DR_ROWS)
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["plan"] == EXPECTED_DR_PLAN
    assert summary["state"] == "PLANNED"


def test_plan_writes_nothing_to_the_cloud(world, passing_run):
    """Runs after the plans above (module order): the cloud is exactly as it was."""
    emu = world["emu"]
    after = emu.truth()
    assert _comparable_truth(after) == _comparable_truth(world["truth_before"])
    assert after["request_counts"]["acr"] > 0  # the runs did reach the emulator
    # What the proxies saw: only reads.
    seen = [r for proxy in world["proxies"] for r in proxy.snapshot()]
    assert seen, "the proxies recorded nothing: the CLI bypassed them"
    acr_actions = {action for service, *_, action in seen if service == "acr"}
    assert "" not in acr_actions
    assert acr_actions <= {
        "GetInstance", "ListRepository", "ListRepoTag", "ListArtifactLifecycleRule", "ListChartRepository",
        "ListChartNamespace", "ListNamespace", "ListRepoSyncRule", "GetRepoSourceCodeRepo", "ListRepoBuildRule",
    }, acr_actions
    assert not acr_actions & WRITE_ACTIONS
    assert not any(a.startswith(("Create", "Delete", "Update", "Put", "Cancel")) for a in acr_actions)
    oss_methods = {method for service, method, *_ in seen if service == "oss"}
    assert oss_methods <= {"GET", "HEAD"}, oss_methods
    # The emulator's own per-service counters agree with the proxies' count.
    assert after["request_counts"].get("acr", 0) == sum(1 for r in seen if r[0] == "acr")
    assert after["request_counts"].get("oss", 0) == sum(1 for r in seen if r[0] == "oss")
