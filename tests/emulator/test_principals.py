"""OSS's principals in the emulator (issue 12 item 1), through the real ACR and OSS SDKs.

OSS exempts the bucket owner's root from a bucket policy, and nobody else: the registry
reaches a customer bucket through its RAM role
(``acs:ram::<owner>:role/aliyuncontainerregistrycustomizedossbucketrole``), which a Deny
for ``"*"`` or for that role binds. So a hand-put ``"*"`` Deny makes the emulated GC fail
(the real failure mode), while a freeze naming an explicit principal lets GC finish.

Dataset, by hand: one instance, one repository app/svc with tags n1 (newest), n2, o1, o2
(oldest), the rule keeps the 2 newest: GC deletes o1 and o2 (expired), keeps n1, n2.
Keys: the owner's root (acs:ram::1001:root, the first credential), the owner account's
RAM user ci-pusher, and another account's root (acs:ram::2002:root).
"""

from __future__ import annotations

import io
import json
import time

import pytest
from alibabacloud_oss20190517 import models as oss_models
from alibabacloud_tea_util.models import RuntimeOptions

from emulator_kit import call_gc_action, make_acr_client
from oss_sdk_kit import oss_call, oss_client

BUCKET = "prin-bucket"
INSTANCE = "cri-prin"
OWNER = "1001"
ROOT = ("LTAI-prin-root", "prin-root-secret", f"acs:ram::{OWNER}:root")
PUSHER = ("LTAI-prin-pusher", "prin-pusher-secret", f"acs:ram::{OWNER}:user/ci-pusher")
STRANGER = ("LTAI-prin-other", "prin-other-secret", "acs:ram::2002:root")
REGISTRY_ROLE = f"acs:ram::{OWNER}:role/aliyuncontainerregistrycustomizedossbucketrole"
OBJECT_WRITES = ["oss:PutObject", "oss:DeleteObject"]


def _tag(name: str, day: int) -> dict:
    return {"tag": name, "digest": "sha256:" + f"{day:02d}" * 32, "updated": f"2024-05-{day:02d}T00:00:00Z",
            "layers": ["sha256:" + "f" * 64]}


def dataset(policy: dict | None = None, owner: str | None = None) -> dict:
    bucket = {"name": BUCKET, "policy": policy, "extra_objects": [{"key": "uploads/a.bin", "size": 10}]}
    if owner is not None:
        bucket["owner"] = owner
    return {
        "clock": "2024-06-01T00:00:00Z",
        "credentials": [{"access_key_id": ak, "access_key_secret": secret, "principal": principal}
                        for ak, secret, principal in (ROOT, PUSHER, STRANGER)],
        "layers": {"sha256:" + "f" * 64: 1000},
        "instances": [{
            "instance_id": INSTANCE, "name": "prin", "gc_whitelisted": True, "bucket": BUCKET,
            "namespaces": ["app"],
            "repositories": [{"namespace": "app", "name": "svc",
                              "tags": [_tag("n1", 20), _tag("n2", 19), _tag("o1", 10), _tag("o2", 9)]}],
            "lifecycle_rules": [{"scope": "INSTANCE", "retention_tag_count": 2}],
        }],
        "buckets": [bucket],
    }


def deny(principals: list[str], sid: str = "Freeze") -> dict:
    return {"Version": "1", "Statement": [{"Sid": sid, "Effect": "Deny", "Principal": principals,
                                           "Action": OBJECT_WRITES, "Resource": [f"acs:oss:*:*:{BUCKET}/*"]}]}


def oss(emulator, key):
    return oss_client(emulator.oss_endpoint, key[0], key[1])


def put(client, key: str, data: bytes = b"x") -> None:
    client.put_object(BUCKET, key, oss_models.PutObjectRequest(body=io.BytesIO(data)))


def delete(client, key: str) -> None:
    client.delete_object(BUCKET, key, oss_models.DeleteObjectRequest())


def refused(call, *args) -> str | None:
    """The error code of a refused call, None when it went through."""
    try:
        call(*args)
    except Exception as exc:  # the SDK's ClientException / UnretryableException
        return getattr(exc, "code", repr(exc))
    return None


def run_gc(emulator) -> dict:
    """Start the instance's GC through the ACR SDK and wait for its end; the task as the API says."""
    acr = make_acr_client(emulator.acr_endpoint, ROOT[0], ROOT[1])
    task_id = call_gc_action(acr, "CreateGarbageCollectionTask", InstanceId=INSTANCE)["TaskId"]
    deadline = time.monotonic() + 30
    while True:
        task = call_gc_action(acr, "GetGarbageCollectionTask", InstanceId=INSTANCE, TaskId=task_id)
        if task["State"] in ("SUCCESS", "FAILED", "CANCELED") or time.monotonic() > deadline:
            return task
        time.sleep(0.05)


@pytest.mark.parametrize("principals", [["*"], [REGISTRY_ROLE],
                                        [REGISTRY_ROLE.replace("aliyuncontainerregistrycustomizedossbucketrole",
                                                               "AliyunContainerRegistryCustomizedOSSBucketRole")]],
                         ids=["star", "registry-role", "registry-role-as-the-console-spells-it"])
def test_a_deny_binding_the_registrys_role_makes_gc_fail_naming_the_action(emulator, principals):
    emulator.load(dataset(deny(principals)))
    before = emulator.truth()
    task = run_gc(emulator)
    assert task["State"] == "FAILED", task
    assert "oss:DeleteObject" in task["ErrorMessage"] and "AccessDenied" in task["ErrorMessage"], task
    assert REGISTRY_ROLE in task["ErrorMessage"], task
    after = emulator.truth()
    # the refused delete changed nothing: every tag and object is still there
    assert after["instances"][INSTANCE]["tags"] == before["instances"][INSTANCE]["tags"] == {
        "app/svc": ["n1", "n2", "o1", "o2"]}
    assert after["buckets"][BUCKET]["objects"] == before["buckets"][BUCKET]["objects"]


def test_the_owners_root_is_never_denied_and_everyone_else_is_bound_by_a_star_deny(emulator):
    emulator.load(dataset(deny(["*"])))
    assert emulator.truth()["buckets"][BUCKET]["owner"] == OWNER  # default: the first credential's account
    root = oss(emulator, ROOT)
    put(root, "uploads/root.bin")  # the owner's root: exempt, as on OSS
    delete(root, "uploads/root.bin")
    for key in (PUSHER, STRANGER):  # a RAM user of the owner account is not the owner's root
        client = oss(emulator, key)
        assert refused(put, client, "uploads/denied.bin") == "AccessDenied"
        assert refused(delete, client, "uploads/a.bin") == "AccessDenied"
        assert oss_call(client, BUCKET, "GetBucketStat", "/?stat")["BucketStat"]["ObjectCount"]  # reads stay open
    current = {o["key"] for o in emulator.objects(BUCKET)["current"]}
    assert "uploads/a.bin" in current and "uploads/denied.bin" not in current


def test_an_explicit_owner_moves_the_exemption(emulator):
    # the bucket belongs to account 2002: its root is exempt, the first credential is not
    emulator.load(dataset(deny(["*"]), owner="2002"))
    assert refused(put, oss(emulator, ROOT), "uploads/x.bin") == "AccessDenied"
    put(oss(emulator, STRANGER), "uploads/x.bin")
    task = run_gc(emulator)  # the registry is now 2002's role: still bound by "*"
    assert task["State"] == "FAILED" and "acs:ram::2002:role/" in task["ErrorMessage"], task


def test_an_explicit_principal_freeze_lets_gc_finish_and_stops_only_that_principal(emulator):
    emulator.load(dataset())
    root, pusher = oss(emulator, ROOT), oss(emulator, PUSHER)
    put(pusher, "uploads/before.bin")  # allowed before the freeze
    oss_call(root, BUCKET, "PutBucketPolicy", "/?policy", "PUT", body=json.dumps(deny([PUSHER[2]])))

    task = run_gc(emulator)
    assert (task["State"], task["TagsDeleted"]) == ("SUCCESS", 2), task
    assert emulator.truth()["instances"][INSTANCE]["tags"] == {"app/svc": ["n1", "n2"]}  # o1, o2 by hand
    assert refused(put, pusher, "uploads/during.bin") == "AccessDenied"
    assert refused(delete, pusher, "uploads/before.bin") == "AccessDenied"
    put(oss(emulator, STRANGER), "uploads/other.bin")  # not listed: not frozen

    oss_call(root, BUCKET, "DeleteBucketPolicy", "/?policy", "DELETE", runtime=RuntimeOptions(), body_type="none")
    put(pusher, "uploads/after.bin")  # thawed: allowed again
    delete(pusher, "uploads/before.bin")
    current = {o["key"] for o in emulator.objects(BUCKET)["current"]}
    assert {"uploads/after.bin", "uploads/other.bin"} <= current
    assert not {"uploads/during.bin", "uploads/before.bin"} & current
