"""``GET /_emulator/dump`` and ``POST /_emulator/restore``: the emulator's state kept across a restart.

A dump restored into a NEW emulator process (``acr-gc emulator serve --restore``) must be
the same cloud: the same ground truth (buckets with noncurrent versions and delete
markers, tags, GC tasks, policy, fault settings and counts), the same answers through the
real SDKs, a clock that goes on from the dumped time, and fresh object version ids that
never repeat restored ones. A GC task dumped while RUNNING must go on after the restore
and end exactly where an uninterrupted task on the same data ends, which is worked out
by hand below. A document that is not a dump changes nothing.

Dataset (instance cri-dr, versioned bucket dr-storage, one INSTANCE rule keeping the 2
newest tags of every repository); every tag has layers [base (1000 B), its own layer]:

  app/web  w01..w06  updated 05-01..05-06, own images W1..W6, own layers 100 B × i
  app/api  a01..a06  updated 05-01..05-06, own images A2..A6 and a01 = A6 (an alias of a06),
                     own layers 1000 B × i
  expired: w01..w04, a01..a04 (8 tags; the newest two of each repository stay)
  freed:   8 tag links × 71 B; manifests W1..W4, A2..A4 (A6 lives on in a06) × 1024 B;
           own layers W1..W4 (100+200+300+400) and A2..A4 (2000+3000+4000); base stays
           = 568 + 7168 + 1000 + 9000 = 17 736 B, all of it noncurrent in the versioned bucket
"""

from __future__ import annotations

import io
import json
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import httpx
import pytest
from alibabacloud_cr20181201 import models as cr
from alibabacloud_oss20190517 import models as oss_models
from typer.testing import CliRunner

from acr_gc.cli import app
from acr_gc.emulator.process import EmulatorProcess
from emulator_kit import AK, SECRET, call_gc_action, make_acr_client
from oss_sdk_kit import bucket_stat, oss_call, oss_client

pytestmark = pytest.mark.slow

INSTANCE, BUCKET = "cri-dr", "dr-storage"
BASE = "sha256:" + "b" * 64


def layer(name: str) -> str:
    return "sha256:" + name.encode().hex().ljust(64, "0")


def image(name: str) -> str:
    return "sha256:" + name.encode().hex().rjust(64, "e")


def tags(prefix: str, own_unit: int) -> tuple[list[dict], dict[str, int]]:
    out, sizes = [], {}
    for i in range(1, 7):
        own = f"{prefix.upper()}{i}"
        sizes[layer(own)] = own_unit * i
        out.append({"tag": f"{prefix}{i:02d}", "digest": image(own), "updated": f"2024-05-0{i}T00:00:00Z",
                    "layers": [BASE, layer(own)]})  # fmt: skip
    return out, sizes


WEB, WEB_SIZES = tags("w", 100)
API, API_SIZES = tags("a", 1000)
API[0] = dict(API[5], tag="a01", updated="2024-05-01T00:00:00Z")  # a01: same image as a06
del API_SIZES[layer("A1")]
ORIGINAL_POLICY = {"Version": "1", "Statement": [{"Sid": "keep-out", "Effect": "Deny", "Principal": ["uid-x"],
                   "Action": ["oss:DeleteObject"], "Resource": [f"acs:oss:*:*:{BUCKET}/*"]}]}  # fmt: skip
DATASET = {
    "clock": "2024-06-01T00:00:00Z",
    "credentials": [{"access_key_id": AK, "access_key_secret": SECRET, "principal": "ops"}],
    "layers": {BASE: 1000, **WEB_SIZES, **API_SIZES},
    "instances": [{
        "instance_id": INSTANCE, "name": "dr", "gc_whitelisted": True, "bucket": BUCKET, "namespaces": ["app"],
        "repositories": [{"namespace": "app", "name": "web", "tags": WEB}, {"namespace": "app", "name": "api", "tags": API}],
        "charts": [{"namespace": "app", "name": "chart", "versions": [{"version": "1.0", "size": 5000}]}],
        "lifecycle_rules": [{"scope": "INSTANCE", "retention_tag_count": 2}],
    }],
    # owned by another account: the "ops" key is bound by the policy (the owner's root would not be)
    "buckets": [{"name": BUCKET, "owner": "acct-owner", "versioning": "Enabled", "policy": ORIGINAL_POLICY,
                 "lifecycle": [{"id": "nc", "prefix": "", "noncurrent_days": 3}],
                 "extra_objects": [{"key": "backup/a.tar", "size": 500}, {"key": "backup/b.tar", "size": 70}]}],
}  # fmt: skip
RETAINED = {"app/api": ["a05", "a06"], "app/web": ["w05", "w06"]}
FREED_BYTES = 8 * 71 + 7 * 1024 + (100 + 200 + 300 + 400) + (2000 + 3000 + 4000)
NEW_POLICY = {"Version": "1", "Statement": [{"Sid": "freeze-backups", "Effect": "Deny", "Principal": ["ops"],
              "Action": ["oss:PutObject", "oss:DeleteObject"], "Resource": [f"acs:oss:*:*:{BUCKET}/backup/*"]}]}  # fmt: skip


def wait_for(predicate, timeout: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"{what} not reached within {timeout} s")


def gc_tasks(emu: EmulatorProcess) -> list[dict]:
    return emu.truth()["instances"][INSTANCE]["gc_tasks"]


def without_clock(truth: dict) -> dict:
    return {k: v for k, v in truth.items() if k != "clock"}


def sdk_view(emu: EmulatorProcess) -> dict:
    """What a client reads through the real SDKs (time-dependent fields left out)."""
    acr, oss = make_acr_client(emu.acr_endpoint), oss_client(emu.oss_endpoint)
    pages = {}
    for repo in acr.list_repository(cr.ListRepositoryRequest(instance_id=INSTANCE)).body.repositories:
        pages[repo.repo_name] = [
            [(i.tag, i.digest, i.image_size, i.image_update) for i in acr.list_repo_tag(
                cr.ListRepoTagRequest(instance_id=INSTANCE, repo_id=repo.repo_id, page_no=n, page_size=1)).body.images]
            for n in (1, 2, 3)
        ]  # fmt: skip
    stat = bucket_stat(oss, BUCKET)
    policy = oss_call(oss, BUCKET, "GetBucketPolicy", "/?policy", body_type="string")
    versions = oss_call(oss, BUCKET, "ListObjectVersions", "/?versions")["ListVersionsResult"]
    return {
        "tags": pages,
        "stat": {k: stat[k] for k in ("Storage", "ObjectCount", "DeleteMarkerCount", "StandardStorage")},
        "versions": versions,
        "policy": policy,
        "gc": call_gc_action(acr, "ListGarbageCollectionTask", InstanceId=INSTANCE)["Tasks"],
    }


def seconds_between(earlier: str, later: str) -> float:
    return (datetime.fromisoformat(later.replace("Z", "+00:00"))
            - datetime.fromisoformat(earlier.replace("Z", "+00:00"))).total_seconds()  # fmt: skip


def test_restored_process_is_the_same_cloud_truth_sdk_reads_and_fresh_version_ids(tmp_path):
    dump_file = tmp_path / "dump.json"
    with EmulatorProcess(DATASET, gc_tags_per_second=500) as first:
        acr, oss = make_acr_client(first.acr_endpoint), oss_client(first.oss_endpoint)
        task_id = call_gc_action(acr, "CreateGarbageCollectionTask", InstanceId=INSTANCE)["TaskId"]
        wait_for(lambda: gc_tasks(first)[0]["state"] == "SUCCESS", what="GC SUCCESS")
        # writes of every kind: content, an overwrite, a delete (marker + noncurrent), a new policy
        oss.put_object(BUCKET, "notes/readme.txt", oss_models.PutObjectRequest(body=io.BytesIO(b"kept across")))
        oss.put_object(BUCKET, "backup/a.tar", oss_models.PutObjectRequest(body=io.BytesIO(b"v2")))
        oss.delete_object(BUCKET, "backup/b.tar", oss_models.DeleteObjectRequest())
        oss_call(oss, BUCKET, "PutBucketPolicy", "/?policy", "PUT", json.dumps(NEW_POLICY))
        first.advance_clock(1)  # noncurrent versions stay (3-day rule)
        first.set_faults(hold={"action": "DeleteRepoTag", "skip": 5}, gc_fail_after_tags=9, seed=3)
        view_before = sdk_view(first)
        before = first.truth()
        objects_before = first.objects(BUCKET)
        dump = first.dump()
        dump_file.write_text(json.dumps(dump), encoding="utf-8")

    assert before["instances"][INSTANCE]["tags"] == RETAINED
    assert before["buckets"][BUCKET]["noncurrent_bytes"] == FREED_BYTES + 500 + 70  # GC + overwrite + delete
    with EmulatorProcess(restore=dump_file, gc_tags_per_second=500) as second:
        after = second.truth()
        assert without_clock(after) == without_clock(before)
        assert after["buckets"][BUCKET]["policy"] == NEW_POLICY
        assert after["faults"]["hold"] == {"action": "DeleteRepoTag", "skip": 5}
        assert after["instances"][INSTANCE]["gc_tasks"][0]["task_id"] == task_id
        assert 0 <= seconds_between(dump["clock"]["now"], after["clock"]) < 120, "the clock goes on from the dump"
        assert second.objects(BUCKET) == objects_before
        assert sdk_view(second) == view_before
        assert view_before["policy"] == json.dumps(NEW_POLICY)  # the text exactly as put
        oss = oss_client(second.oss_endpoint)
        with pytest.raises(Exception) as denied:  # the restored policy is in force
            oss.put_object(BUCKET, "backup/a.tar", oss_models.PutObjectRequest(body=io.BytesIO(b"v3")))
        assert denied.value.code == "AccessDenied"
        got = oss.get_object(BUCKET, "notes/readme.txt", oss_models.GetObjectRequest()).body
        assert got == b"kept across"
        # a fresh write gets a version id the restored bucket never had
        oss.put_object(BUCKET, "notes/readme.txt", oss_models.PutObjectRequest(body=io.BytesIO(b"new")))
        old_ids = {v["version_id"] for b in dump["buckets"] for vs in b["objects"].values() for v in vs}
        assert len(old_ids) == sum(len(vs) for b in dump["buckets"] for vs in b["objects"].values())  # markers too
        new_current = {o["key"]: o["version_id"] for o in second.objects(BUCKET)["current"]}
        assert new_current["notes/readme.txt"] not in old_ids
        # reset still goes back to the dataset the first process started from
        second.reset()
        reset = second.truth()
        assert reset["instances"][INSTANCE] == {"tags": {"app/api": [f"a0{i}" for i in range(1, 7)],
                                                         "app/web": [f"w0{i}" for i in range(1, 7)]}, "gc_tasks": []}
        assert reset["buckets"][BUCKET]["policy"] == ORIGINAL_POLICY and reset["faults"]["hold"] is None


def final_state(emu: EmulatorProcess) -> dict:
    """The end of a GC as truth and the object listing show it (version ids and times aside)."""
    truth = emu.truth()
    objects = emu.objects(BUCKET)
    return {
        "tags": truth["instances"][INSTANCE]["tags"],
        "gc": [{k: v for k, v in t.items() if k != "task_id"} for t in truth["instances"][INSTANCE]["gc_tasks"]],
        "bucket": truth["buckets"][BUCKET],
        "objects": {kind: sorted((o["key"], o["size"]) for o in rows) for kind, rows in objects.items()},
    }


def test_gc_dumped_while_running_finishes_after_restore_as_an_uninterrupted_one(tmp_path):
    slow = {"gc_tags_per_second": 4}  # 8 tags: about 2 s
    with ThreadPoolExecutor(2) as pool:
        first, uninterrupted = pool.map(lambda _: EmulatorProcess(DATASET, **slow).start(), range(2))
    try:
        live_bytes = first.truth()["buckets"][BUCKET]["live_bytes"]
        for emu in (first, uninterrupted):
            call_gc_action(make_acr_client(emu.acr_endpoint), "CreateGarbageCollectionTask", InstanceId=INSTANCE)
        wait_for(lambda: gc_tasks(first)[0]["tags_deleted"] >= 3, what="3 tags deleted")
        dump = first.dump()
        [task] = dump["gc_tasks"][INSTANCE]
        assert task["state"] == "RUNNING" and 3 <= task["tags_deleted"] < 8 and len(task["pending"]) > 0
        path = tmp_path / "running.json"
        path.write_text(json.dumps(dump), encoding="utf-8")
        first.stop()
        with EmulatorProcess(restore=path, acr_port=first.acr_port, oss_port=first.oss_port, **slow) as restarted:
            assert (restarted.acr_endpoint, restarted.oss_endpoint) == (first.acr_endpoint, first.oss_endpoint)
            wait_for(lambda: gc_tasks(restarted)[0]["state"] == "SUCCESS", what="restored GC SUCCESS")
            wait_for(lambda: gc_tasks(uninterrupted)[0]["state"] == "SUCCESS", what="uninterrupted GC SUCCESS")
            restored, expected = final_state(restarted), final_state(uninterrupted)
        assert restored == expected
        assert restored["tags"] == RETAINED
        [gc] = restored["gc"]
        assert (gc["state"], gc["progress"], gc["tags_deleted"], gc["bytes_deleted"]) == ("SUCCESS", 100, 8, FREED_BYTES)
        bucket = restored["bucket"]
        assert (bucket["live_bytes"], bucket["noncurrent_bytes"]) == (live_bytes - FREED_BYTES, FREED_BYTES)

        # the same dump POSTed into a running emulator goes on there too
        uninterrupted.restore(dump)
        assert gc_tasks(uninterrupted)[0]["state"] == "RUNNING"
        wait_for(lambda: gc_tasks(uninterrupted)[0]["state"] == "SUCCESS", what="GC SUCCESS after POST restore")
        assert final_state(uninterrupted) == expected
    finally:
        first.stop()
        uninterrupted.stop()


def test_a_document_that_is_not_a_dump_changes_nothing(emulator):
    emulator.load(DATASET)
    emulator.set_faults(seed=9)
    good = emulator.dump()
    before = emulator.truth()
    broken_task = json.loads(json.dumps(good))
    broken_task["gc_tasks"] = {"cri-unknown": []}
    broken_version = json.loads(json.dumps(good))
    broken_version["buckets"][0]["objects"]["backup/a.tar"][0]["data"] = "not base64!"
    for document in ({}, {"format": "something-else"}, broken_task, broken_version, dict(good, faults={"settings": {}})):
        response = httpx.post(f"{emulator.admin_url}/restore", json=document, timeout=30, trust_env=False)
        assert response.status_code == 400 and response.json()["error"].startswith("invalid dump"), response.text
    assert without_clock(emulator.truth()) == without_clock(before)


def test_serve_refuses_both_or_neither_source_flags_set_by_the_dump_and_a_non_dump(tmp_path):
    dataset = tmp_path / "dataset.json"
    dataset.write_text(json.dumps(DATASET), encoding="utf-8")
    not_a_dump = tmp_path / "dump.json"
    not_a_dump.write_text("[1, 2]", encoding="utf-8")
    runner = CliRunner()
    for args, says in (
        (["--dataset", str(dataset), "--restore", str(not_a_dump)], "exactly one of --dataset FILE and --restore FILE"),
        ([], "exactly one of --dataset FILE and --restore FILE"),
        (["--restore", str(not_a_dump), "--qps", "5"], "--qps cannot be combined with --restore"),
        (["--restore", str(not_a_dump)], "invalid dump"),
    ):
        result = runner.invoke(app, ["emulator", "serve", *args])
        assert result.exit_code == 2 and says in result.output, result.output
