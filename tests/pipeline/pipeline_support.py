"""Shared helpers of the pipeline tests: a hand-worked dataset, configs, the CLI, truth.

Imported by name (tests/pipeline/conftest.py puts this folder on ``sys.path``).

The dataset is small enough to work out by hand; the expected retained sets and
verdicts live next to the instances below, with the reasoning in comments. Nothing
here calls the planner: every expectation is independent of the code under test.
"""

from __future__ import annotations

import copy
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

# the dataset builders; tests reach them as ``ps.tag``, ``ps.layer``...
from dataset_kit import GITHUB, bucket, digest, instance, layer, repo, tag  # noqa: F401
from proxy_kit import RecordingProxy  # noqa: F401 - the pipeline tests import it from here

ROOT = Path(__file__).resolve().parents[2]

# The run's key (principal uid-ops) and a second principal's key (an application writing
# to the bucket: the one the freeze must stop).
OPS_AK, OPS_SECRET, OPS_PRINCIPAL = "LTAI-pipeline-ops", "pipeline-ops-secret", "uid-ops-1001"
WRITER_AK, WRITER_SECRET, WRITER_PRINCIPAL = "LTAI-pipeline-writer", "pipeline-writer-secret", "uid-writer-2002"

BASE_LAYER_SIZE = 10_000
CLOCK = "2026-11-01T00:00:00Z"

# ---- cri-run: the hand-worked instance of the full run ---------------------------------
#
# Lifecycle rules (DESIGN section 3):
#   INSTANCE             regexp latest|stable          -> every repository
#   NAMESPACE apps       count 2                       -> apps/web, apps/api
#   REPO apps/web        regexp v\d+                   -> apps/web
#   NAMESPACE infra      count 5, EnableDeleteTag FALSE -> ignored (were it applied,
#                                                         infra/base would keep all 4 tags)
RUN_OWN = {"W1": 100, "W2": 200, "W3": 300, "W4": 400, "W5": 500, "W6": 600,
           "A1": 1100, "A2": 1200, "A3": 1300, "A4": 1400, "A5": 1500,
           "B1": 2100, "B2": 2200, "B3": 2300, "T1": 3100}

RUN_REPOS = [
    # Newest first: main; feat-a and feat-b TIE (10-29) and go by name, so feat-a is 2nd
    # (kept by count 2) and feat-b 3rd; v1 kept by v\d+; v1-rc not (v\d+ must match the
    # whole tag); old-main not; latest kept by the INSTANCE regexp although it is oldest.
    repo("apps", "web", [
        tag("main", "W1", "2026-10-30T00:00:00Z"),
        tag("feat-b", "W3", "2026-10-29T00:00:00Z"),
        tag("feat-a", "W2", "2026-10-29T00:00:00Z"),
        tag("v1", "W4", "2026-10-01T00:00:00Z"),
        tag("v1-rc", "W5", "2026-09-30T00:00:00Z"),
        tag("old-main", "W1", "2026-09-01T00:00:00Z"),
        tag("latest", "W6", "2026-08-01T00:00:00Z"),
    ], source_code=GITHUB, build_rules=["feat-*"]),
    # Newest first r4, r3 (kept by count 2), r2, r1 (expired); stable kept by the regexp.
    repo("apps", "api", [
        tag("r4", "A4", "2026-10-20T00:00:00Z"),
        tag("r3", "A3", "2026-10-19T00:00:00Z"),
        tag("r2", "A2", "2026-10-18T00:00:00Z"),
        tag("r1", "A1", "2026-10-17T00:00:00Z"),
        tag("stable", "A5", "2026-01-01T00:00:00Z"),
    ]),
    # Only the INSTANCE rule applies (the infra rule is disabled): latest and stable kept,
    # b-2 and b-1 expired.
    repo("infra", "base", [
        tag("latest", "B3", "2026-10-25T00:00:00Z"),
        tag("b-2", "B2", "2026-10-01T00:00:00Z"),
        tag("b-1", "B1", "2026-09-01T00:00:00Z"),
        tag("stable", "B2", "2026-08-01T00:00:00Z"),
    ]),
    repo("misc", "tools", [tag("latest", "T1", "2026-10-01T00:00:00Z")]),
]
RUN_RULES = [
    {"scope": "INSTANCE", "tag_regexp": "latest|stable", "enable_delete_tag": True},
    {"scope": "NAMESPACE", "namespace": "apps", "retention_tag_count": 2, "enable_delete_tag": True},
    {"scope": "REPO", "namespace": "apps", "repo": "web", "tag_regexp": r"v\d+", "enable_delete_tag": True},
    {"scope": "NAMESPACE", "namespace": "infra", "retention_tag_count": 5, "enable_delete_tag": False},
]

# The operator's regeneration manifest (line numbers appear in deleted_tags.csv).
MANIFEST = (
    "namespace,repo,tag_glob,source\n"            # line 1
    "apps,web,v*-rc,release pipeline web\n"       # line 2: apps/web:v1-rc
    "apps,api,r*,git tag r and make api\n"        # line 3: apps/api:r1, r2
    "infra,base,b-*,make -C base image\n"         # line 4: infra/base:b-1 (b-2 is settled earlier, by alias)
    "ci,builds,b*,ci pipeline rebuild\n"          # line 5: every expired ci/builds tag (cri-frz)
)

# What is left of cri-run after GC: worked out above, per repository (sorted, as truth).
RUN_RETAINED = {
    "apps/api": ["r3", "r4", "stable"],
    "apps/web": ["feat-a", "latest", "main", "v1"],
    "infra/base": ["latest", "stable"],
    "misc/tools": ["latest"],
}
# Every expired tag of cri-run: (namespace, repo, tag, image, regenerable_by, regenerate_from)
RUN_EXPIRED = [
    ("apps", "api", "r1", "A1", "manifest", "git tag r and make api (manifest line 3)"),
    ("apps", "api", "r2", "A2", "manifest", "git tag r and make api (manifest line 3)"),
    ("apps", "web", "feat-b", "W3", "build-rule", "build rule image_tag feat-*"),  # bound source + feat-*
    ("apps", "web", "old-main", "W1", "alias", "retained tag main"),  # main keeps digest W1
    ("apps", "web", "v1-rc", "W5", "manifest", "release pipeline web (manifest line 2)"),
    ("infra", "base", "b-1", "B1", "manifest", "make -C base image (manifest line 4)"),
    ("infra", "base", "b-2", "B2", "alias", "retained tag stable"),  # stable keeps digest B2
]
RUN_UPDATED = {(rp["namespace"], rp["name"], t["tag"]): t["updated"] for rp in RUN_REPOS for t in rp["tags"]}

# The emulator's GC deletes repositories in (namespace, name) order, oldest tag first
# (docs/emulator.md): the order in which a failing GC leaves its partial deletions.
RUN_GC_ORDER = [("apps/api", "r1"), ("apps/api", "r2"),
                ("apps/web", "old-main"), ("apps/web", "v1-rc"), ("apps/web", "feat-b"),
                ("infra/base", "b-1"), ("infra/base", "b-2")]

# A policy with other statements: an Allow and a Deny for some principals (not ours).
OTHER_POLICY = {
    "Version": "1",
    "Statement": [
        {"Sid": "allow-ci-read", "Effect": "Allow", "Principal": ["uid-ci-3003"],
         "Action": ["oss:GetObject", "oss:ListObjects"], "Resource": ["acs:oss:*:*:cri-run-storage/*"]},
        {"Sid": "deny-intern-delete", "Effect": "Deny", "Principal": ["uid-intern-4004"],
         "Action": ["oss:DeleteObject"], "Resource": ["acs:oss:*:*:cri-run-storage/docker/*"]},
    ],
}

# ---- cri-frz: 34 tags, 30 of them expired (slow GC for the freeze and timeout tests) ----
FRZ_TAGS = [f"b{i:02d}" for i in range(34)]  # b00 oldest .. b33 newest
# b00..b29 updated on Sep 1..30, b30..b33 on Oct 1..4: newest first is b33, b32, ...
FRZ_REPO = repo("ci", "builds", [
    tag(name, f"F{i}", f"2026-09-{i + 1:02d}T00:00:00Z" if i < 30 else f"2026-10-{i - 29:02d}T00:00:00Z")
    for i, name in enumerate(FRZ_TAGS)
])
FRZ_RULES = [{"scope": "NAMESPACE", "namespace": "ci", "retention_tag_count": 4, "enable_delete_tag": True}]
FRZ_RETAINED = {"ci/builds": ["b30", "b31", "b32", "b33"]}  # the 4 newest (October)

# ---- the check instances (test_pipeline_checks.py) --------------------------------------
SMALL_OWN = {"S1": 700, "S2": 800, "S3": 900}


def small_repo(namespace="apps", name="svc"):
    # Newest first s3, s2 (kept by count 2), s1 expired; each tag its own image, so s1 is
    # regenerable only by the build rule s* on the bound source (none where it is dropped).
    return repo(namespace, name, [
        tag("s3", "S3", "2026-10-03T00:00:00Z"),
        tag("s2", "S2", "2026-10-02T00:00:00Z"),
        tag("s1", "S1", "2026-10-01T00:00:00Z"),
    ], source_code=GITHUB, build_rules=["s*"])


SMALL_RULES = [{"scope": "REPO", "namespace": "apps", "repo": "svc", "retention_tag_count": 2,
                "enable_delete_tag": True}]


def dataset(run_policy=None) -> dict:
    """Every instance of the pipeline tests; ``run_policy`` is cri-run-storage's policy."""
    own = {**RUN_OWN, **SMALL_OWN, **{f"F{i}": 5000 + i for i in range(len(FRZ_TAGS))}}
    no_build = repo("apps", "svc", small_repo()["tags"])  # same tags, no source binding, no build rule
    return copy.deepcopy({
        "clock": CLOCK,
        "credentials": [
            {"access_key_id": OPS_AK, "access_key_secret": OPS_SECRET, "principal": OPS_PRINCIPAL},
            {"access_key_id": WRITER_AK, "access_key_secret": WRITER_SECRET, "principal": WRITER_PRINCIPAL},
        ],
        "layers": {layer("base"): BASE_LAYER_SIZE, **{layer(k): v for k, v in own.items()}},
        "instances": [
            instance("cri-run", "cri-run-storage", ["apps", "infra", "misc"], RUN_REPOS, RUN_RULES,
                     charts=[{"namespace": "misc", "name": "helm-charts",
                              "versions": [{"version": "0.1.0", "size": 5000}]}]),
            instance("cri-frz", "cri-frz-storage", ["ci"], [FRZ_REPO], FRZ_RULES),
            # not whitelisted; otherwise fine (s1 regenerable by its build rule)
            instance("cri-nowl", "cri-nowl-storage", ["apps"], [small_repo()], SMALL_RULES, whitelisted=False),
            # whitelisted, but s1 has no way back: no binding, no build rule, no replica, no manifest line
            instance("cri-gate", "cri-gate-storage", ["apps"], [no_build], SMALL_RULES),
            # versioning Enabled and no noncurrent rule: storage would never drop
            instance("cri-never", "cri-never-storage", ["apps"], [small_repo()], SMALL_RULES),
        ],
        "buckets": [
            bucket("cri-run-storage", policy=run_policy, extra=[{"key": "exports/report.csv", "size": 500}]),
            bucket("cri-frz-storage", versioning=None, noncurrent_days=None,
                   extra=[{"key": "uploads/existing.bin", "size": 100}]),
            bucket("cri-nowl-storage"),
            bucket("cri-gate-storage"),
            bucket("cri-never-storage", noncurrent_days=None),
        ],
    })


# ---- configs, the flow, the CLI ----------------------------------------------------------


DEFAULT_SEMANTICS = {"combination": "any-retains", "count_regexp": "count-or-match", "regexp_match": "full"}


def config_dict(endpoints: tuple[str, str], root: Path, instance_id: str, bucket_name: str, **sections) -> dict:
    """A run config on the emulator (or proxies); ``sections`` update top-level sections."""
    config = {
        "target": {"region": "cn-hangzhou", "instance_id": instance_id, "bucket": bucket_name,
                   "acr_endpoint": endpoints[0], "oss_endpoint": endpoints[1], "credentials": "chain"},
        # the datasets are hand-worked under the emulator's default reading, pinned here
        # (issue 11 made "conservative" the default; tests of it say so in their config)
        "policy": {"regeneration_manifest": str(write_manifest(root)), "semantics": dict(DEFAULT_SEMANTICS)},
        "freeze": {"principals": [WRITER_PRINCIPAL]},  # the application writing to the buckets
        "gc": {"driver": "emulator", "timeout": 120, "poll_interval": 0.2, "on_timeout": "cancel"},
        "sampling": {"mode": "scheduled"},
        "report": {"out_dir": str(root / "out")},
        "ledger": {"url": f"sqlite:///{root / 'ledger.db'}"},
        "api": {"qps": 200, "concurrency": 4, "retries": 6},
    }
    for section, values in sections.items():
        config.setdefault(section, {}).update(values)
    return config


def write_manifest(root: Path) -> Path:
    path = root / "regeneration.csv"
    if not path.exists():
        path.write_text(MANIFEST, encoding="utf-8")
    return path


def write_config(config: dict, path: Path) -> Path:
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def run_flow(config: dict, monkeypatch, ak: str = OPS_AK, secret: str = OPS_SECRET):
    """``reclaim_storage`` in this process (on the session's Prefect server): (state, folder)."""
    from acr_gc.config import Config
    from acr_gc.flows.reclaim import reclaim_storage
    from acr_gc.reports.files import new_run_id

    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", ak)
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", secret)
    parsed = Config.model_validate(config)
    run_id = new_run_id()
    state = reclaim_storage(parsed, run_id=run_id, return_state=True)
    return state, Path(config["report"]["out_dir"]) / config["target"]["instance_id"] / run_id


def cli_env(prefect_api_url: str | None, ak: str = OPS_AK, secret: str = OPS_SECRET) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALIBABA_CLOUD_", "PREFECT_API_"))}
    env.update(ALIBABA_CLOUD_ACCESS_KEY_ID=ak, ALIBABA_CLOUD_ACCESS_KEY_SECRET=secret,
               PREFECT_SERVER_ANALYTICS_ENABLED="false", PYTHONPATH=str(ROOT), COLUMNS="200")
    if prefect_api_url:
        env["PREFECT_API_URL"] = prefect_api_url
    return env


def cli_args(*args: str) -> list[str]:
    return [sys.executable, "-m", "acr_gc.cli", *args]


def run_cli(args: list[str], env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(cli_args(*args), env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def summary_of(folder: Path) -> dict:
    return json.loads((folder / "summary.json").read_text(encoding="utf-8"))


def csv_rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def ledger_rows(config: dict, run_id: str) -> dict:
    """The ledger's run row, freezes and GC tasks of one run, read with SQLAlchemy."""
    from sqlalchemy import select

    from acr_gc.ledger import Ledger
    from acr_gc.ledger.models import Freeze, GcTask, Run

    ledger = Ledger(config["ledger"]["url"])
    try:
        with ledger.session() as session:
            run = session.get(Run, run_id)
            freezes = list(session.scalars(select(Freeze).where(Freeze.run_id == run_id)))
            tasks = list(session.scalars(select(GcTask).where(GcTask.run_id == run_id)))
            return {"run": run, "freezes": freezes, "gc_tasks": tasks}
    finally:
        ledger.dispose()


def cloud_state(truth: dict) -> dict:
    """What a blocked run must leave exactly as it was: tags, GC tasks, bucket bytes,
    objects, versioning and policy of every instance and bucket."""
    return {
        "instances": {iid: {"tags": inst["tags"], "gc_tasks": inst["gc_tasks"]}
                      for iid, inst in truth["instances"].items()},
        "buckets": {name: {k: b[k] for k in ("live_bytes", "noncurrent_bytes", "objects", "live_objects",
                                             "noncurrent_objects", "versioning", "policy")}
                    for name, b in truth["buckets"].items()},
    }


# ---- the real OSS SDK, as another principal would use it --------------------------------


def oss_sdk(endpoint: str, ak: str, secret: str):
    from alibabacloud_oss20190517.client import Client
    from alibabacloud_tea_openapi import models as open_api_models

    return Client(open_api_models.Config(access_key_id=ak, access_key_secret=secret, endpoint=endpoint,
                                         endpoint_type="ip", protocol="http", region_id="cn-hangzhou"))


def sdk_bucket_stat(client, bucket_name: str) -> dict:
    from alibabacloud_tea_openapi.models import OpenApiRequest, Params
    from alibabacloud_tea_util.models import RuntimeOptions

    params = Params(action="GetBucketStat", pathname="/?stat", method="GET", style="ROA", body_type="xml",
                    auth_type="AK", req_body_type="xml", version="2019-05-17", protocol="HTTP")
    return client.execute(params, OpenApiRequest(host_map={"bucket": bucket_name}),
                          RuntimeOptions(autoretry=False))["body"]["BucketStat"]


def sdk_put_object(client, bucket_name: str, key: str, data: bytes) -> None:
    import io

    from alibabacloud_oss20190517 import models as oss_models

    client.put_object(bucket_name, key, oss_models.PutObjectRequest(body=io.BytesIO(data)))


def sdk_get_object(client, bucket_name: str, key: str) -> bytes:
    from alibabacloud_oss20190517 import models as oss_models

    response = client.get_object(bucket_name, key, oss_models.GetObjectRequest())
    body = response.body
    return body.read() if hasattr(body, "read") else body


def sdk_get_policy(client, bucket_name: str):
    """The policy document, or the error code (``NoSuchBucketPolicy``) when there is none."""
    from alibabacloud_tea_openapi.models import OpenApiRequest, Params
    from alibabacloud_tea_util.models import RuntimeOptions

    params = Params(action="GetBucketPolicy", pathname="/?policy", method="GET", style="ROA",
                    body_type="string", auth_type="AK", req_body_type="json", version="2019-05-17",
                    protocol="HTTP")
    try:
        body = client.execute(params, OpenApiRequest(host_map={"bucket": bucket_name}),
                              RuntimeOptions(autoretry=False))["body"]
    except Exception as exc:  # the SDK's UnretryableException / ClientException
        return getattr(exc, "code", repr(exc))
    return json.loads(body)


