"""GC on a hand-worked dataset: every number below is computed by hand in the comments.

Dataset (instance cri-hw, versioned bucket acr-hw, noncurrent versions expire after 3 days):

  layers  L1 10_000_000  L2 2_000_000  L3 3_000_000  L4 400_000  L5 50_000  L6 6_000_000
  manifests (1024 bytes each)  MA=[L1,L2]  MB=[L1,L3,L6]  MC=[L1,L3,L4]  MD=[L1,L5]  ME=[L1,L2,L5]  MG=[L4]
  team/web     v1 MA 01-01 · v2 MB 02-01 · v3 MC 03-01 · latest MC 03-01
  team/api     1.0 MD 01-15 · 1.1 ME 02-15
  infra/proxy  stable MA 2023-12-01 · edge MB 04-01 · old MC 2023-11-01
  infra/tools  t1 MG 01-01
  chart team/mychart 0.1.0 (30_000) 0.2.0 (40_000); extra object backup/readme.txt (5_000)

  rules: NAMESPACE team keep 2 newest · REPO team/web keep /v1/ · REPO infra/proxy keep /stable/
         · INSTANCE keep 0 with EnableDeleteTag false (ignored)

Retention by hand:
  team/web order newest first, ties by name: latest(03-01), v3(03-01), v2, v1
      keep 2 → latest, v3; regexp v1 → v1; expired: v2
  team/api order 1.1, 1.0 → both kept by count
  infra/proxy order edge, stable, old → regexp keeps stable; expired: edge, old
  infra/tools: only the disabled rule would apply → no applying rule → keeps t1
  expired = web:v2, proxy:edge, proxy:old

Sweep by hand: surviving manifests MA (web:v1, proxy:stable), MC (web:v3/latest), MD, ME, MG;
  MB loses both tags (web:v2, proxy:edge) → MB deleted; its layers L1, L3 are still used
  (MA/MC), L6 is not → L6 deleted. proxy:old's MC survives through web:v3 → only its link goes.
"""

from __future__ import annotations

import time

import pytest
from alibabacloud_tea_openapi.exceptions import ClientException

L = {n: "sha256:" + str(n) * 64 for n in range(1, 7)}
M = {n: "sha256:" + n * 64 for n in "abcdeg"}  # MA..MG as hex 'a'*64 …
LAYER_SIZES = {L[1]: 10_000_000, L[2]: 2_000_000, L[3]: 3_000_000, L[4]: 400_000, L[5]: 50_000, L[6]: 6_000_000}


def tag(name, manifest, day, layers):
    return {"tag": name, "digest": M[manifest], "updated": f"{day}T00:00:00Z", "layers": [L[i] for i in layers]}


def blob(digest):
    hexpart = digest.split(":")[1]
    return f"docker/registry/v2/blobs/sha256/{hexpart[:2]}/{hexpart}/data"


def link(ns, repo, name):
    return f"docker/registry/v2/repositories/{ns}/{repo}/_manifests/tags/{name}/current/link"


def handworked_dataset(credentials):
    return {
        "clock": "2024-06-01T00:00:00Z",
        "credentials": credentials,
        "layers": LAYER_SIZES,
        "instances": [
            {
                "instance_id": "cri-hw",
                "name": "handworked",
                "gc_whitelisted": True,
                "bucket": "acr-hw",
                "namespaces": ["team", "infra"],
                "repositories": [
                    {"namespace": "team", "name": "web", "tags": [
                        tag("v1", "a", "2024-01-01", [1, 2]),
                        tag("v2", "b", "2024-02-01", [1, 3, 6]),
                        tag("v3", "c", "2024-03-01", [1, 3, 4]),
                        tag("latest", "c", "2024-03-01", [1, 3, 4]),
                    ]},
                    {"namespace": "team", "name": "api", "tags": [
                        tag("1.0", "d", "2024-01-15", [1, 5]),
                        tag("1.1", "e", "2024-02-15", [1, 2, 5]),
                    ]},
                    {"namespace": "infra", "name": "proxy", "tags": [
                        tag("stable", "a", "2023-12-01", [1, 2]),
                        tag("edge", "b", "2024-04-01", [1, 3, 6]),
                        tag("old", "c", "2023-11-01", [1, 3, 4]),
                    ]},
                    {"namespace": "infra", "name": "tools", "tags": [tag("t1", "g", "2024-01-01", [4])]},
                ],
                "charts": [{"namespace": "team", "name": "mychart",
                            "versions": [{"version": "0.1.0", "size": 30_000}, {"version": "0.2.0", "size": 40_000}]}],
                "lifecycle_rules": [
                    {"scope": "NAMESPACE", "namespace": "team", "retention_tag_count": 2},
                    {"scope": "REPO", "namespace": "team", "repo": "web", "tag_regexp": "v1"},
                    {"scope": "REPO", "namespace": "infra", "repo": "proxy", "tag_regexp": "stable"},
                    {"scope": "INSTANCE", "retention_tag_count": 0, "enable_delete_tag": False},
                ],
            },
            {
                "instance_id": "cri-nowl",
                "name": "not-whitelisted",
                "gc_whitelisted": False,
                "bucket": "acr-nowl",
                "namespaces": ["x"],
                "repositories": [{"namespace": "x", "name": "y", "tags": [tag("t", "a", "2024-01-01", [1, 2])]}],
                "lifecycle_rules": [{"scope": "INSTANCE", "retention_tag_count": 0, "tag_regexp": "nothing"}],
            },
        ],
        "buckets": [
            {"name": "acr-hw", "versioning": "Enabled",
             "lifecycle": [{"id": "noncurrent-3d", "prefix": "", "noncurrent_days": 3}],
             "extra_objects": [{"key": "backup/readme.txt", "size": 5_000}]},
            {"name": "acr-nowl"},
        ],
    }


def wait_final(client, gc_call, instance_id, task_id, timeout=20.0):
    deadline = time.monotonic() + timeout
    while True:
        status = gc_call(client, "GetGarbageCollectionTask", InstanceId=instance_id, TaskId=task_id)
        if status["State"] in ("SUCCESS", "FAILED", "CANCELED") or time.monotonic() > deadline:
            return status
        time.sleep(0.05)


@pytest.fixture
def loaded(emulator, credentials):
    emulator.load(handworked_dataset(credentials))
    return emulator


def test_handworked_gc_storage_tags_objects_and_release(loaded, acr_client, gc_call):
    emu, client = loaded, acr_client()

    before = emu.truth()["buckets"]["acr-hw"]
    # layers 10_000_000+2_000_000+3_000_000+400_000+50_000+6_000_000 = 21_450_000
    # manifests 6 × 1024 = 6_144; links 10 tags × len("sha256:"+64 hex)=71 → 710
    # charts 30_000+40_000 = 70_000; extra 5_000
    # 21_450_000 + 6_144 + 710 + 70_000 + 5_000 = 21_531_854
    assert before["live_bytes"] == 21_531_854
    assert before["noncurrent_bytes"] == 0
    # objects: 6 layers + 6 manifests + 10 links + 2 charts + 1 extra = 25
    assert before["objects"] == 25
    keys_before = {o["key"] for o in emu.objects("acr-hw")["current"]}

    assert gc_call(client, "GetGarbageCollectionEnablement", InstanceId="cri-hw")["Enabled"] is True
    task = gc_call(client, "CreateGarbageCollectionTask", InstanceId="cri-hw")
    assert task["State"] in ("PENDING", "RUNNING")
    final = wait_final(client, gc_call, "cri-hw", task["TaskId"])
    assert final["State"] == "SUCCESS" and final["Progress"] == 100
    assert final["TagsDeleted"] == 3  # web:v2, proxy:edge, proxy:old
    # 3 links + MB manifest + L6 blob = 5 objects; 3×71 + 1_024 + 6_000_000 = 6_001_237 bytes
    assert final["ObjectsDeleted"] == 5
    assert final["BytesDeleted"] == 6_001_237
    assert isinstance(final["FinishTime"], int) and final["FinishTime"] >= final["CreateTime"]

    truth = emu.truth()
    assert truth["instances"]["cri-hw"]["tags"] == {
        "infra/proxy": ["stable"],
        "infra/tools": ["t1"],
        "team/api": ["1.0", "1.1"],
        "team/web": ["latest", "v1", "v3"],
    }
    keys_after = {o["key"] for o in emu.objects("acr-hw")["current"]}
    assert keys_before - keys_after == {
        link("team", "web", "v2"),
        link("infra", "proxy", "edge"),
        link("infra", "proxy", "old"),
        blob(M["b"]),
        blob(L[6]),
    }
    assert keys_after <= keys_before

    after = truth["buckets"]["acr-hw"]
    # versioned: the 5 deleted objects become noncurrent, nothing is released yet
    assert after["live_bytes"] == 15_530_617  # 21_531_854 − 6_001_237
    assert after["noncurrent_bytes"] == 6_001_237
    assert after["objects"] == 25  # 20 live + 5 noncurrent

    emu.advance_clock(2)  # 2 days < 3 noncurrent days: still held
    assert emu.truth()["buckets"]["acr-hw"]["noncurrent_bytes"] == 6_001_237
    emu.advance_clock(2)  # 4 days > 3: released
    released = emu.truth()["buckets"]["acr-hw"]
    assert released["live_bytes"] == 15_530_617
    assert released["noncurrent_bytes"] == 0
    assert released["objects"] == 20

    # a second GC finds nothing more to delete
    again = wait_final(client, gc_call, "cri-hw", gc_call(client, "CreateGarbageCollectionTask", InstanceId="cri-hw")["TaskId"])
    assert (again["State"], again["TagsDeleted"], again["ObjectsDeleted"], again["BytesDeleted"]) == ("SUCCESS", 0, 0, 0)
    listed = gc_call(client, "ListGarbageCollectionTask", InstanceId="cri-hw")
    assert [t["TaskId"] for t in listed["Tasks"]] == [again["TaskId"], task["TaskId"]]  # newest first
    assert listed["TotalCount"] == 2


def test_not_whitelisted_instance_refuses_gc(loaded, acr_client, gc_call):
    client = acr_client()
    assert gc_call(client, "GetGarbageCollectionEnablement", InstanceId="cri-nowl")["Enabled"] is False
    with pytest.raises(ClientException) as err:
        gc_call(client, "CreateGarbageCollectionTask", InstanceId="cri-nowl")
    assert err.value.code == "GC_NOT_ENABLED"
    assert err.value.status_code == 403
    assert loaded.truth()["instances"]["cri-nowl"]["tags"] == {"x/y": ["t"]}


def many_tags_dataset(credentials, n=60, keep=10):
    """One repo, n tags, each its own manifest over one shared layer plus its own layer."""
    layers = {"sha256:" + "0" * 64: 1000}
    tags = []
    for i in range(n):
        own = "sha256:" + f"{i + 1:064x}"
        layers[own] = 100
        tags.append({"tag": f"t{i:03d}", "digest": "sha256:" + f"{i + 1:064x}".replace("0", "f", 1),
                     "updated": f"2024-01-01T00:{i // 60:02d}:{i % 60:02d}Z", "layers": ["sha256:" + "0" * 64, own]})
    return {
        "clock": "2024-06-01T00:00:00Z",
        "credentials": credentials,
        "layers": layers,
        "instances": [{"instance_id": "cri-many", "name": "many", "gc_whitelisted": True, "bucket": "acr-many",
                       "namespaces": ["ns"], "repositories": [{"namespace": "ns", "name": "r", "tags": tags}],
                       "lifecycle_rules": [{"scope": "INSTANCE", "retention_tag_count": keep}]}],
        "buckets": [{"name": "acr-many", "versioning": "Enabled"}],
    }


@pytest.fixture
def many(emulator, credentials):
    emulator.load(many_tags_dataset(credentials))
    return emulator


def test_cancel_part_way_keeps_deleted_tags_and_skips_sweep(many, acr_client, gc_call):
    client = acr_client()
    objects_before = {o["key"] for o in many.objects("acr-many")["current"]}
    task = gc_call(client, "CreateGarbageCollectionTask", InstanceId="cri-many")
    # one active task per instance: a second Create names the running task
    with pytest.raises(ClientException) as err:
        gc_call(client, "CreateGarbageCollectionTask", InstanceId="cri-many")
    assert err.value.code == "GC_TASK_ALREADY_RUNNING"
    assert task["TaskId"] in err.value.message
    deadline = time.monotonic() + 10
    while gc_call(client, "GetGarbageCollectionTask", InstanceId="cri-many", TaskId=task["TaskId"])["TagsDeleted"] < 3:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    canceled = gc_call(client, "CancelGarbageCollectionTask", InstanceId="cri-many", TaskId=task["TaskId"])
    assert canceled["State"] == "CANCELED"
    time.sleep(0.3)  # the runner must not go on after the cancel
    final = gc_call(client, "GetGarbageCollectionTask", InstanceId="cri-many", TaskId=task["TaskId"])
    deleted = final["TagsDeleted"]
    assert final["State"] == "CANCELED" and deleted == canceled["TagsDeleted"]
    assert 3 <= deleted < 50 and final["Progress"] < 100  # 60 tags, keep 10 → 50 planned
    tags = many.truth()["instances"]["cri-many"]["tags"]["ns/r"]
    assert len(tags) == 60 - deleted
    # the oldest tags go first (t000 is oldest): exactly t000..t{deleted-1} are gone
    assert sorted(set(f"t{i:03d}" for i in range(60)) - set(tags)) == [f"t{i:03d}" for i in range(deleted)]
    # no sweep: only the deleted tags' link objects left the bucket
    gone = objects_before - {o["key"] for o in many.objects("acr-many")["current"]}
    assert gone == {link("ns", "r", f"t{i:03d}") for i in range(deleted)}
    assert final["ObjectsDeleted"] == deleted
    # a finished task cannot be cancelled again, and a new task may start
    with pytest.raises(ClientException) as err:
        gc_call(client, "CancelGarbageCollectionTask", InstanceId="cri-many", TaskId=task["TaskId"])
    assert err.value.code == "GC_TASK_NOT_RUNNING"


def test_injected_failure_after_n_tags(many, acr_client, gc_call):
    client = acr_client()
    many.set_faults(gc_fail_after_tags=5)
    task = gc_call(client, "CreateGarbageCollectionTask", InstanceId="cri-many")
    final = wait_final(client, gc_call, "cri-many", task["TaskId"])
    assert final["State"] == "FAILED"
    assert final["TagsDeleted"] == 5 and final["ObjectsDeleted"] == 5  # 5 links, no sweep
    assert "ErrorMessage" in final
    assert len(many.truth()["instances"]["cri-many"]["tags"]["ns/r"]) == 55
    assert many.truth()["instances"]["cri-many"]["gc_tasks"][0]["state"] == "FAILED"
    # cleared: the next task runs to the end (45 more expired: 55 tags, keep 10)
    many.set_faults(gc_fail_after_tags=None)
    task2 = gc_call(client, "CreateGarbageCollectionTask", InstanceId="cri-many")
    final2 = wait_final(client, gc_call, "cri-many", task2["TaskId"])
    assert final2["State"] == "SUCCESS" and final2["TagsDeleted"] == 45
    assert many.truth()["instances"]["cri-many"]["tags"]["ns/r"] == [f"t{i:03d}" for i in range(50, 60)]


def test_gc_pace_fault_pauses_and_resumes_a_running_task_to_the_same_end(many, acr_client, gc_call):
    """``gc_tags_per_second`` 0 keeps a task RUNNING with nothing more deleted (what a test
    needs to look at a GC "still running" on a machine of any speed); another rate, or null
    (the server's own pace), lets it go on to the end an uninterrupted task reaches."""
    client = acr_client()
    try:
        many.set_faults(gc_tags_per_second=0)
        task = gc_call(client, "CreateGarbageCollectionTask", InstanceId="cri-many")

        def status():
            return gc_call(client, "GetGarbageCollectionTask", InstanceId="cri-many", TaskId=task["TaskId"])

        # paused from the start: 50 tags planned, none deleted, however long we look (the
        # server's own pace, 200 tags/s, would have finished within the first quarter second)
        for _ in range(10):
            seen = status()
            assert (seen["State"], seen["TagsDeleted"], seen["Progress"]) == ("RUNNING", 0, 0), seen
            time.sleep(0.1)
        assert len(many.truth()["instances"]["cri-many"]["tags"]["ns/r"]) == 60

        many.set_faults(gc_tags_per_second=20)  # resumed slowly, then paused again part-way
        deadline = time.monotonic() + 20
        while status()["TagsDeleted"] < 5 and time.monotonic() < deadline:
            time.sleep(0.02)
        many.set_faults(gc_tags_per_second=0)
        held = status()
        assert held["State"] == "RUNNING" and 5 <= held["TagsDeleted"] < 50, held
        for _ in range(5):
            time.sleep(0.1)
            assert status()["TagsDeleted"] == held["TagsDeleted"]
        assert 0 < status()["Progress"] < 100
        assert len(many.truth()["instances"]["cri-many"]["tags"]["ns/r"]) == 60 - held["TagsDeleted"]

        many.set_faults(gc_tags_per_second=None)  # the server's pace again
        final = wait_final(client, gc_call, "cri-many", task["TaskId"])
        assert final["State"] == "SUCCESS" and final["TagsDeleted"] == 50 and final["Progress"] == 100, final
        assert many.truth()["instances"]["cri-many"]["tags"]["ns/r"] == [f"t{i:03d}" for i in range(50, 60)]
    finally:
        many.set_faults(gc_tags_per_second=None)


def test_gc_pace_fault_is_validated(many):
    with pytest.raises(Exception) as err:
        many.set_faults(gc_tags_per_second=-1)
    assert "gc_tags_per_second" in str(err.value)
    assert many.truth()["faults"]["gc_tags_per_second"] is None  # the server's own pace
    assert many.set_faults(gc_tags_per_second=0)["gc_tags_per_second"] == 0
    assert many.set_faults(gc_tags_per_second=None)["gc_tags_per_second"] is None
