"""The real OSS SDK (alibabacloud-oss20190517) pointed at an emulator, for the emulator's own tests.

The pinned SDK reaches a loopback endpoint only with ``endpoint_type='ip'`` and parses
most XML answers into empty models, so calls go through its generic ``execute`` (as
docs/emulator.md explains); ``oss_call`` returns the parsed body.
"""

from __future__ import annotations

from alibabacloud_oss20190517.client import Client as OssClient
from alibabacloud_tea_openapi import models as open_api_models
from alibabacloud_tea_openapi.models import OpenApiRequest, Params
from alibabacloud_tea_util.models import RuntimeOptions

from emulator_kit import AK, SECRET


def oss_client(endpoint: str, access_key_id: str = AK, secret: str = SECRET, **config) -> OssClient:
    return OssClient(
        open_api_models.Config(access_key_id=access_key_id, access_key_secret=secret, endpoint=endpoint,
                               endpoint_type="ip", protocol="http", region_id="cn-hangzhou", **config)
    )  # fmt: skip


def oss_call(client: OssClient, bucket: str, action: str, pathname: str, method: str = "GET", body=None,
             runtime: RuntimeOptions | None = None, body_type: str | None = None):  # fmt: skip
    """One OSS operation, answered with parsed XML (``body_type='string'``: the raw text).

    A request ``body`` (a policy document) goes out as JSON and is answered with nothing."""
    params = Params(action=action, pathname=pathname, method=method, style="ROA", auth_type="AK",
                    body_type=body_type or ("xml" if body is None else "none"),
                    req_body_type="xml" if body is None else "json", version="2019-05-17", protocol="HTTP")  # fmt: skip
    request = OpenApiRequest(host_map={"bucket": bucket}, body=body)
    return client.execute(params, request, runtime or RuntimeOptions())["body"]


def bucket_stat(client: OssClient, bucket: str) -> dict:
    return oss_call(client, bucket, "GetBucketStat", "/?stat")["BucketStat"]
