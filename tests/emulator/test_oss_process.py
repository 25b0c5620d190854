"""The OSS port of the real emulator process (``acr-gc emulator serve``), through the SDK.

Uses the shared ``emulator`` fixture (tests/conftest.py): the server's fault/throttle
middleware sits in front of ``oss_wire``. Checks that what the SDK reads equals the
admin ground truth, and that the emulated clock releases noncurrent bytes.
"""

from __future__ import annotations

import io

import pytest
from alibabacloud_oss20190517 import models as oss_models
from alibabacloud_oss20190517.client import Client as OssClient
from alibabacloud_tea_openapi import models as open_api_models
from alibabacloud_tea_openapi.models import OpenApiRequest, Params
from alibabacloud_tea_util.models import RuntimeOptions

AK, SECRET = "AK-oss-proc", "oss-proc-secret"

DATASET = {
    "clock": "2024-06-01T00:00:00Z",
    "credentials": [{"access_key_id": AK, "access_key_secret": SECRET, "principal": "ops"}],
    "layers": {},
    "instances": [],
    "buckets": [
        {"name": "proc-bucket", "versioning": "Enabled",
         "lifecycle": [{"id": "nc", "prefix": "", "noncurrent_days": 2}],
         "extra_objects": [{"key": "seed/a", "size": 1000}, {"key": "seed/b", "size": 24}]}
    ],
}  # fmt: skip


def client(endpoint: str, secret: str = SECRET) -> OssClient:
    return OssClient(
        open_api_models.Config(access_key_id=AK, access_key_secret=secret, endpoint=endpoint, endpoint_type="ip",
                               protocol="http", region_id="cn-hangzhou")
    )  # fmt: skip


def bucket_stat(c: OssClient, bucket: str) -> dict:
    params = Params(action="GetBucketStat", pathname="/?stat", method="GET", style="ROA", body_type="xml",
                    auth_type="AK", req_body_type="xml", version="2019-05-17", protocol="HTTP")  # fmt: skip
    return c.execute(params, OpenApiRequest(host_map={"bucket": bucket}), RuntimeOptions())["body"]["BucketStat"]


def test_sdk_against_the_emulator_process_matches_ground_truth(emulator):
    emulator.load(DATASET)
    c = client(emulator.oss_endpoint)
    s = bucket_stat(c, "proc-bucket")
    assert (s["Storage"], s["ObjectCount"]) == (1024, 2)
    c.put_object("proc-bucket", "seed/a", oss_models.PutObjectRequest(body=io.BytesIO(b"new")))  # 1000 -> noncurrent
    c.delete_object("proc-bucket", "seed/b", oss_models.DeleteObjectRequest())  # 24 -> noncurrent
    s = bucket_stat(c, "proc-bucket")
    truth = emulator.truth()["buckets"]["proc-bucket"]
    assert (s["Storage"], s["ObjectCount"]) == (1027, 3)
    assert (truth["live_bytes"], truth["noncurrent_bytes"]) == (3, 1024)
    assert s["Storage"] == truth["live_bytes"] + truth["noncurrent_bytes"]
    emulator.advance_clock(2.01)
    s = bucket_stat(c, "proc-bucket")
    truth = emulator.truth()["buckets"]["proc-bucket"]
    assert (s["Storage"], s["ObjectCount"]) == (3, 1)
    assert (truth["live_bytes"], truth["noncurrent_bytes"]) == (3, 0)
    with pytest.raises(Exception) as err:
        bucket_stat(client(emulator.oss_endpoint, secret="wrong"), "proc-bucket")
    assert (err.value.code, err.value.data["statusCode"]) == ("SignatureDoesNotMatch", 403)
