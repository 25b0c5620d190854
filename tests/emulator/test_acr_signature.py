"""The ACS3-HMAC-SHA256 check: only correctly signed, fresh, unreplayed requests get data.

Raw requests are signed with the SDK's own signer (``alibabacloud_tea_openapi.utils.Utils
.get_authorization``), then sent with httpx as-is or tampered after signing.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from urllib.parse import urlencode

import httpx
import pytest
from alibabacloud_cr20181201 import models as cr
from alibabacloud_tea_openapi.exceptions import ClientException
from alibabacloud_tea_openapi.utils import Utils

from emulator_kit import AK, SECRET


@pytest.fixture
def loaded(emulator, credentials):
    emulator.load({
        "clock": "2024-06-01T00:00:00Z",
        "credentials": credentials,
        "instances": [{"instance_id": "cri-s", "name": "s", "bucket": "b", "namespaces": ["n"]}],
        "buckets": [{"name": "b"}],
    })
    return emulator


def signed(endpoint, query, *, secret=SECRET, ak=AK, date=None, nonce=None, action="ListNamespace"):
    headers = {
        "host": endpoint,
        "x-acs-version": "2018-12-01",
        "x-acs-action": action,
        "x-acs-date": date or datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "x-acs-signature-nonce": nonce or uuid.uuid4().hex,
        "accept": "application/json",
        "x-acs-content-sha256": hashlib.sha256(b"").hexdigest(),
    }
    request = SimpleNamespace(pathname="/", method="POST", query=dict(query), headers=dict(headers))
    headers["Authorization"] = Utils.get_authorization(
        request, "ACS3-HMAC-SHA256", hashlib.sha256(b"").hexdigest(), ak, secret)
    return headers


def send(endpoint, query, headers):
    return httpx.post(f"http://{endpoint}/?{urlencode(query)}", headers=headers, trust_env=False)


def test_raw_signed_request_accepted_then_replay_and_tamper_refused(loaded):
    ep = loaded.acr_endpoint
    query = {"InstanceId": "cri-s", "PageSize": "10"}
    headers = signed(ep, query)
    ok = send(ep, query, headers)
    assert ok.status_code == 200 and ok.json()["Namespaces"][0]["NamespaceName"] == "n"

    replay = send(ep, query, headers)
    assert (replay.status_code, replay.json()["Code"]) == (400, "SignatureNonceUsed")

    fresh = signed(ep, query)
    tampered = send(ep, {"InstanceId": "cri-s", "PageSize": "11"}, fresh)
    assert tampered.status_code == 400
    assert tampered.json()["Code"] == "IncompleteSignature"
    assert "Namespaces" not in tampered.json()

    fresh = signed(ep, query)
    fresh["x-acs-action"] = "ListRepository"  # a signed header changed after signing
    assert send(ep, query, fresh).json()["Code"] == "IncompleteSignature"


def test_stale_date_refused(loaded):
    ep = loaded.acr_endpoint
    query = {"InstanceId": "cri-s"}
    old = (datetime.now(timezone.utc) - timedelta(minutes=20)).strftime("%Y-%m-%dT%H:%M:%SZ")
    response = send(ep, query, signed(ep, query, date=old))
    assert (response.status_code, response.json()["Code"]) == (400, "InvalidTimeStamp.Expired")
    assert "Namespaces" not in response.json()


def test_wrong_secret_and_unknown_key_refused_through_sdk(loaded, acr_client):
    with pytest.raises(ClientException) as err:
        acr_client(secret="not-the-secret").list_namespace(cr.ListNamespaceRequest(instance_id="cri-s"))
    assert (err.value.status_code, err.value.code) == (400, "IncompleteSignature")
    assert SECRET not in str(err.value.data) and "not-the-secret" not in str(err.value.data)
    with pytest.raises(ClientException) as err:
        acr_client(access_key_id="LTAI-unknown").list_namespace(cr.ListNamespaceRequest(instance_id="cri-s"))
    assert (err.value.status_code, err.value.code) == (404, "InvalidAccessKeyId.NotFound")


def test_unsigned_request_refused(loaded):
    response = httpx.post(f"http://{loaded.acr_endpoint}/?InstanceId=cri-s",
                          headers={"x-acs-action": "ListNamespace", "x-acs-version": "2018-12-01"}, trust_env=False)
    assert response.status_code == 400 and "Namespaces" not in response.json()
