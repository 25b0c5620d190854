"""The ``hold`` fault: a chosen operation stops answering, through the real SDKs, until released.

What the kill tests rely on: a held request really gets no answer while every other
request (other operations, the admin port) still does; ``skip`` lets exactly that many
matching requests through first; ``held`` and ``hold_matched`` are visible at once; a
release answers the held request normally; a held request whose client gave up never
reaches the service; bad settings are refused with 400.
"""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest
from alibabacloud_cr20181201 import models as cr
from alibabacloud_tea_util.models import RuntimeOptions

from emulator_kit import AK, SECRET, make_acr_client
from oss_sdk_kit import oss_call as sdk_call
from oss_sdk_kit import oss_client

BUCKET = "hold-bucket"
POLICY = {"Version": "1", "Statement": [{"Effect": "Deny", "Action": ["oss:PutObject"], "Principal": ["*"],
                                         "Resource": [f"acs:oss:*:*:{BUCKET}/*"]}]}  # fmt: skip
DATASET = {
    "clock": "2024-06-01T00:00:00Z",
    "credentials": [{"access_key_id": AK, "access_key_secret": SECRET, "principal": "ops"}],
    "layers": {},
    "instances": [{"instance_id": "cri-hold", "name": "hold", "bucket": BUCKET, "namespaces": ["n"]}],
    "buckets": [{"name": BUCKET, "extra_objects": [{"key": "a", "size": 100}, {"key": "b", "size": 23}]}],
}


def oss_call(client, action: str, pathname: str, method: str = "GET", body=None, runtime=None) -> dict:
    return sdk_call(client, BUCKET, action, pathname, method, body, runtime)


def bucket_stat(client) -> dict:
    return oss_call(client, "GetBucketStat", "/?stat")["BucketStat"]


def wait_for(predicate, timeout: float = 10.0):
    """Poll the admin port until ``predicate`` holds (the emulator answers admin calls while holding)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("condition not reached in time")


class Background:
    """One SDK call on its own thread, so the test can watch it not being answered."""

    def __init__(self, call):
        self.result = self.error = None
        self.thread = threading.Thread(target=self._run, args=(call,), daemon=True)
        self.thread.start()

    def _run(self, call) -> None:
        try:
            self.result = call()
        except Exception as exc:  # reported to the test, which asserts on it
            self.error = exc

    def join(self, timeout: float) -> bool:
        self.thread.join(timeout)
        return not self.thread.is_alive()


def test_held_bucket_stat_waits_while_other_requests_answer_then_release_answers_it(emulator):
    emulator.load(DATASET)
    oss = oss_client(emulator.oss_endpoint)
    faults = emulator.set_faults(hold={"action": "GetBucketStat", "skip": 1})
    assert (faults["hold"], faults["held"], faults["hold_matched"]) == ({"action": "GetBucketStat", "skip": 1}, 0, 0)

    assert bucket_stat(oss)["Storage"] == 123  # the skipped one answers
    held = Background(lambda: bucket_stat(oss))
    wait_for(lambda: emulator.set_faults()["held"] == 1)
    assert emulator.set_faults()["hold_matched"] == 2
    # everything else keeps answering: other OSS operations, the ACR port, the admin port
    versions = oss_call(oss, "ListObjects", "/")["ListBucketResult"]
    assert [c["Key"] for c in versions["Contents"]] == ["a", "b"]
    acr = make_acr_client(emulator.acr_endpoint)
    assert acr.get_instance(cr.GetInstanceRequest(instance_id="cri-hold")).body.instance_id == "cri-hold"
    assert emulator.truth()["faults"]["held"] == 1
    assert not held.join(0.5), "the held GetBucketStat answered while the hold was set"

    emulator.set_faults(hold=None)
    assert held.join(10), "clearing the hold did not release the request"
    assert held.error is None and held.result["Storage"] == 123
    truth = emulator.truth()
    assert (truth["faults"]["hold"], truth["faults"]["held"]) == (None, 0)
    assert bucket_stat(oss)["Storage"] == 123  # no hold any more


def test_skip_counts_only_matching_acr_actions_and_reset_releases(emulator):
    emulator.load(DATASET)
    acr = make_acr_client(emulator.acr_endpoint)
    emulator.set_faults(hold={"action": "GetInstance", "skip": 2})
    for _ in range(3):  # other actions neither count nor wait
        acr.list_namespace(cr.ListNamespaceRequest(instance_id="cri-hold"))
    for _ in range(2):
        acr.get_instance(cr.GetInstanceRequest(instance_id="cri-hold"))
    assert emulator.set_faults()["hold_matched"] == 2
    held = Background(lambda: acr.get_instance(cr.GetInstanceRequest(instance_id="cri-hold")))
    wait_for(lambda: emulator.set_faults()["held"] == 1)
    assert not held.join(0.3)

    emulator.reset()  # back to the start fault settings: no hold, the request proceeds
    assert held.join(10)
    assert held.error is None and held.result.body.instance_id == "cri-hold"
    assert emulator.set_faults()["hold"] is None


def test_held_put_bucket_policy_whose_client_gave_up_never_changes_the_bucket(emulator):
    emulator.load(DATASET)
    impatient = oss_client(emulator.oss_endpoint, read_timeout=800)
    emulator.set_faults(hold={"action": "PutBucketPolicy", "skip": 0})
    put = Background(lambda: oss_call(impatient, "PutBucketPolicy", "/?policy", "PUT", json.dumps(POLICY),
                                      RuntimeOptions(autoretry=False, read_timeout=800)))  # fmt: skip
    wait_for(lambda: emulator.set_faults()["held"] == 1)
    assert put.join(10) and put.error is not None  # the client timed out and closed its connection
    wait_for(lambda: emulator.set_faults()["held"] == 0)  # the emulator noticed and dropped it
    emulator.set_faults(hold=None)
    time.sleep(0.2)
    assert emulator.truth()["buckets"][BUCKET]["policy"] is None

    oss_call(oss_client(emulator.oss_endpoint), "PutBucketPolicy", "/?policy", "PUT", json.dumps(POLICY))
    assert emulator.truth()["buckets"][BUCKET]["policy"] == POLICY  # without a hold it does change it


@pytest.mark.parametrize(
    "hold",
    [{"action": "GetBucketStat", "bogus": 1}, {"skip": 1}, {"action": "", "skip": 0},
     {"action": "GetBucketStat", "skip": -1}, {"action": "GetBucketStat", "skip": True}, "GetBucketStat"],
)  # fmt: skip
def test_bad_hold_settings_are_refused(emulator, hold):
    response = httpx.post(f"{emulator.admin_url}/faults", json={"hold": hold}, timeout=10, trust_env=False)
    assert response.status_code == 400 and "hold" in response.json()["error"]
    assert emulator.set_faults()["hold"] is None
