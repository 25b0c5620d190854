"""`acr-gc plan` reads the bucket's lifecycle rules with every filter (issue 12, item 6).

A versioned bucket releases GC's deletions only through an Enabled
NoncurrentVersionExpiration rule that nothing can keep from the registry's objects. Each
case puts one rule on the bucket, in the emulator's dataset, and runs `acr-gc plan` as an
operator would (a subprocess, the real OSS SDK reading GetBucketLifecycle's XML): a rule
limited by a tag, a Not filter over the registry's prefix, an object size, a
CreatedBeforeDate, or Disabled, leaves the storage "never released" (exit 3, nothing
written to the cloud); a plain rule gives the window as before (noncurrent days + margin).

The emulated lifecycle applies the same filters on its own clock: in each never-released
case the deleted version is still billed after the rule's days (the emulator's truth),
and with the plain rule it is gone: the product's verdict and the emulator agree.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow

AK, SECRET = "LTAI-lifecycle-ops", "lifecycle-ops-secret"
NONCURRENT_DAYS, MARGIN_DAYS = 3, 2


def _sha(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def dataset(rule: dict) -> dict:
    tags = [{"tag": f"s{i}", "digest": _sha(f"img-{i}"), "updated": f"2026-10-0{i}T00:00:00Z",
             "layers": [_sha(f"layer-{i}")]} for i in (1, 2, 3)]
    return {
        "clock": "2026-11-01T00:00:00Z",
        "credentials": [{"access_key_id": AK, "access_key_secret": SECRET, "principal": "uid-ops"}],
        "layers": {_sha(f"layer-{i}"): 1000 * i for i in (1, 2, 3)},
        "instances": [{
            "instance_id": "cri-lc", "name": "cri-lc", "region": "cn-hangzhou", "gc_whitelisted": True,
            "bucket": "cri-lc-storage", "namespaces": ["apps"],
            "repositories": [{"namespace": "apps", "name": "svc",
                              "source_code": {"type": "GITHUB", "namespace": "acme", "name": "svc"},
                              "build_rules": [{"push_type": "GIT_BRANCH", "push_name": "main", "image_tag": "s*"}],
                              "sync_rules": [], "tags": tags}],
            "charts": [],
            "lifecycle_rules": [{"scope": "REPO", "namespace": "apps", "repo": "svc", "retention_tag_count": 2,
                                 "enable_delete_tag": True}],
        }],
        "buckets": [{"name": "cri-lc-storage", "versioning": "Enabled", "policy": None, "extra_objects": [],
                     "lifecycle": [{"id": "nc", "prefix": "docker/", "noncurrent_days": NONCURRENT_DAYS, **rule}]}],
    }


# (case, the rule's filter, words of why it cannot release, does the emulated OSS release?)
# Two cases are the product being careful where the emulator (one reading of OSS) does
# release: a Not naming a tag (acr-gc cannot see object tags without reading each
# object's tagging; the registry's objects carry none, so the emulator releases them),
# and a CreatedBeforeDate (undocumented whether it limits noncurrent expiry; the emulator
# says it does not).
NEVER = [
    ("tag", {"tags": [{"key": "tier", "value": "cold"}]}, "only on objects tagged tier=cold", False),
    ("not", {"not": {"prefix": "docker/registry/v2/blobs/"}}, "Filter/Not leaves out objects under", False),
    ("size", {"object_size_greater_than": 1024}, "objects of > 1024 bytes", False),
    ("disabled", {"status": "Disabled"}, "it is Disabled", False),
]
# the careful cases run the plan flow in this process (the CLI's exit code is shown above)
CAREFUL = [
    ("not-tagged", {"not": {"prefix": "docker/", "tags": [{"key": "keep", "value": "yes"}]}}, "tagged keep=yes",
     True),
    ("created-before", {"created_before_date": "2026-06-01T00:00:00Z"}, "created before 2026-06-01", True),
]


def _config(emulator, tmp_path: Path) -> dict:
    return {
        "target": {"region": "cn-hangzhou", "instance_id": "cri-lc", "bucket": "cri-lc-storage",
                   "acr_endpoint": emulator.acr_endpoint, "oss_endpoint": emulator.oss_endpoint,
                   "credentials": "chain"},
        "sampling": {"margin_days": MARGIN_DAYS},
        "freeze": {"principals": ["acs:ram::1:user/pusher"]},
        "report": {"out_dir": str(tmp_path / "out")},
        "api": {"retries": 2},
    }


def _plan(emulator, plan_cli, prefect_api_url, tmp_path: Path, rule: dict):
    emulator.load(dataset(rule))
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(_config(emulator, tmp_path)), encoding="utf-8")
    before = emulator.truth()
    result = plan_cli.run(["plan", "--config", str(path)], plan_cli.env(prefect_api_url, AK, SECRET))
    after = emulator.truth()
    for key in ("live_bytes", "noncurrent_bytes", "objects", "policy"):  # plan changes nothing
        assert after["buckets"]["cri-lc-storage"][key] == before["buckets"]["cri-lc-storage"][key]
    assert after["instances"]["cri-lc"]["tags"] == before["instances"]["cri-lc"]["tags"]
    return result


@pytest.mark.parametrize("case, rule, why, emulator_releases", NEVER, ids=[c[0] for c in NEVER])
def test_a_rule_that_can_miss_the_registry_leaves_storage_never_released(
        emulator, plan_cli, prefect_api_url, tmp_path, gc_call, acr_client, case, rule, why, emulator_releases):
    result = _plan(emulator, plan_cli, prefect_api_url, tmp_path, rule)

    assert result.returncode == 3, (result.stdout, result.stderr)
    assert "never released" in result.stdout and "storage will never drop" in result.stdout, result.stdout
    assert "(rule nc does not: " in result.stdout and why in result.stdout, result.stdout
    assert "accept_never_released" in result.stdout
    folder = Path(result.stdout.strip().splitlines()[-1])
    assert yaml.safe_load((folder / "summary.json").read_text(encoding="utf-8"))["state"] == "BLOCKED"

    # The emulated OSS agrees (but for the two careful cases): after GC deletes s1 and the
    # rule's days pass, its data is still billed as noncurrent versions.
    assert (_noncurrent_after_gc(emulator, gc_call, acr_client) == 0) is emulator_releases


@pytest.mark.parametrize("case, rule, why, emulator_releases", CAREFUL, ids=[c[0] for c in CAREFUL])
def test_careful_readings_block_the_plan_too(emulator, prefect_api_url, tmp_path, monkeypatch, gc_call, acr_client,
                                             case, rule, why, emulator_releases):
    from acr_gc.cloud.credentials import reset_chain
    from acr_gc.config import Config
    from acr_gc.flows.plan import plan_instance

    emulator.load(dataset(rule))
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", AK)
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", SECRET)
    reset_chain()
    outcome = plan_instance(Config.model_validate(_config(emulator, tmp_path)))

    assert not outcome.passed and outcome.window.never_released
    assert "never released" in outcome.bucket_blocked and why in outcome.bucket_blocked, outcome.bucket_blocked
    assert yaml.safe_load((outcome.folder / "summary.json").read_text(encoding="utf-8"))["state"] == "BLOCKED"
    assert (_noncurrent_after_gc(emulator, gc_call, acr_client) == 0) is emulator_releases


def test_a_plain_noncurrent_rule_gives_the_window_as_before(emulator, plan_cli, prefect_api_url, tmp_path,
                                                            gc_call, acr_client):
    result = _plan(emulator, plan_cli, prefect_api_url, tmp_path, {})

    assert result.returncode == 0, (result.stdout, result.stderr)
    assert f"release window: {NONCURRENT_DAYS + MARGIN_DAYS} day(s) after GC" in result.stdout, result.stdout
    assert "never released" not in result.stdout
    assert _noncurrent_after_gc(emulator, gc_call, acr_client) == 0


def _noncurrent_after_gc(emulator, gc_call, acr_client) -> int:
    """Run the emulator's GC (s1 expires: count 2 keeps s3, s2), let the rule's days pass,
    and return the bytes still billed as noncurrent (the emulator's truth)."""
    import time

    client = acr_client(AK, SECRET)
    task = gc_call(client, "CreateGarbageCollectionTask", InstanceId="cri-lc")
    for _ in range(200):
        truth = emulator.truth()
        states = [t["state"] for t in truth["instances"]["cri-lc"]["gc_tasks"]]
        if states and states[-1] in ("SUCCESS", "FAILED", "CANCELED"):
            break
        time.sleep(0.05)
    assert states[-1] == "SUCCESS", (states, task)
    assert truth["buckets"]["cri-lc-storage"]["noncurrent_bytes"] > 0  # deleted, still billed
    emulator.advance_clock(NONCURRENT_DAYS + 1)
    return emulator.truth()["buckets"]["cri-lc-storage"]["noncurrent_bytes"]
