"""Signature verification units: our verifier against the clients' own signers.

The expected signatures come from code we did not write: the tea gateway
(``alibabacloud_gateway_oss.Client.get_signature_v4`` / ``get_signature_v1``, what the
``alibabacloud_oss20190517`` SDK runs) and oss2's ``Auth``. Plus one hand-computed V1
vector from the HMAC-SHA1 definition.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from datetime import datetime, timezone
from email.utils import formatdate

import pytest
from alibabacloud_gateway_oss.client import Client as Gateway
from hypothesis import given, settings
from hypothesis import strategies as st

from acr_gc.emulator import dataset as ds
from acr_gc.emulator.oss_signing import (
    AuthError,
    SignedRequest,
    v1_signature,
    v1_string_to_sign,
    v4_signature,
    verify,
)

GW = Gateway()
CRED = ds.Credential(access_key_id="AKID", access_key_secret="s3cr3t", principal="alice")
CREDS = {"AKID": CRED}

key_chars = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=0x2FF, exclude_characters="?#"), max_size=20)
query_keys = st.sampled_from(["prefix", "marker", "max-keys", "versionId", "stat", "list-type", "continuation-token", "x-oss-process", "delimiter"])
query_vals = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=0x2FF), max_size=12)


@settings(max_examples=150, deadline=None)
@given(
    method=st.sampled_from(["GET", "PUT", "DELETE", "HEAD"]),
    bucket=st.from_regex(r"[a-z0-9][a-z0-9-]{2,10}", fullmatch=True),
    key=key_chars,
    query=st.dictionaries(query_keys, query_vals, max_size=4),
    content_type=st.sampled_from([None, "application/octet-stream", "application/xml"]),
    meta=st.dictionaries(st.sampled_from(["x-oss-meta-a", "x-oss-forbid-overwrite", "x-oss-meta-zz"]), st.text(alphabet="abc 12", max_size=6), max_size=2),
)
def test_v4_matches_the_sdk_gateway(method, bucket, key, query, content_type, meta):
    date_time = "20240601T101112Z"
    headers = {"x-oss-date": date_time, "x-oss-content-sha256": "UNSIGNED-PAYLOAD", "host": f"127.0.0.1:9/{bucket}", **meta}
    if content_type:
        headers["content-type"] = content_type
    expected = GW.get_signature_v4(bucket, "/" + key, method, dict(query), dict(headers), "20240601", "cn-hangzhou", "s3cr3t")
    req = SignedRequest(method, bucket, key, list(query.items()), headers)
    assert v4_signature("s3cr3t", req, date_time, "cn-hangzhou") == expected


@settings(max_examples=150, deadline=None)
@given(
    method=st.sampled_from(["GET", "PUT", "DELETE", "HEAD"]),
    bucket=st.from_regex(r"[a-z0-9][a-z0-9-]{2,10}", fullmatch=True),
    key=key_chars,
    query=st.dictionaries(query_keys, query_vals, max_size=4),
    content_md5=st.sampled_from([None, "1B2M2Y8AsgTpgAmY7PhCfg=="]),
)
def test_v1_matches_the_sdk_gateway(method, bucket, key, query, content_md5):
    headers = {"date": "Sat, 01 Jun 2024 10:11:12 GMT", "x-oss-meta-b": "2", "x-oss-meta-a": "1"}
    if content_md5:
        headers["content-md5"] = content_md5
    expected = GW.get_signature_v1(bucket, "/" + key, method, dict(query), dict(headers), "s3cr3t")
    req = SignedRequest(method, bucket, key, list(query.items()), headers)
    assert v1_signature("s3cr3t", req) == expected


def test_v1_matches_oss2():
    oss2 = pytest.importorskip("oss2")
    from oss2.http import Request as Oss2Request

    r = Oss2Request("PUT", "http://127.0.0.1/bkt/a/b.txt", params={"versionId": "v1", "prefix": "ignored"},
                    headers={"Content-Type": "text/plain", "x-oss-meta-k": "v"})  # fmt: skip
    oss2.Auth("AKID", "s3cr3t")._sign_request(r, "bkt", "a/b.txt")
    ak, signature = r.headers["authorization"][4:].split(":")
    headers = {k.lower(): v for k, v in r.headers.items()}
    req = SignedRequest("PUT", "bkt", "a/b.txt", [("versionId", "v1"), ("prefix", "ignored")], headers)
    assert ak == "AKID"
    assert v1_signature("s3cr3t", req) == signature


def test_v1_hand_vector():
    req = SignedRequest(
        "GET", "bkt", "k", [("versioning", ""), ("prefix", "p")],
        {"date": "Sat, 01 Jun 2024 10:11:12 GMT", "x-oss-meta-z": "1", "content-type": "text/plain"},
    )  # fmt: skip
    string_to_sign = "GET\n\ntext/plain\nSat, 01 Jun 2024 10:11:12 GMT\nx-oss-meta-z:1\n/bkt/k?versioning"
    assert v1_string_to_sign(req) == string_to_sign
    expected = base64.b64encode(hmac.new(b"s3cr3t", string_to_sign.encode(), hashlib.sha1).digest()).decode()
    assert v1_signature("s3cr3t", req) == expected


# ---- verify(): codes ----------------------------------------------------------------------


def _v4_request(secret="s3cr3t", ak="AKID", when: float | None = None, key="k", scope_date=None) -> SignedRequest:
    when = time.time() if when is None else when
    date_time = datetime.fromtimestamp(when, timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    headers = {"x-oss-date": date_time, "x-oss-content-sha256": "UNSIGNED-PAYLOAD"}
    sig = GW.get_signature_v4("bkt", "/" + key, "GET", {}, dict(headers), date_time[:8], "cn-hangzhou", secret)
    headers["authorization"] = f"OSS4-HMAC-SHA256 Credential={ak}/{scope_date or date_time[:8]}/cn-hangzhou/oss/aliyun_v4_request, Signature={sig}"
    return SignedRequest("GET", "bkt", key, [], headers)


def _v1_request(secret="s3cr3t", ak="AKID", when: float | None = None) -> SignedRequest:
    headers = {"date": formatdate(time.time() if when is None else when, usegmt=True)}
    sig = GW.get_signature_v1("bkt", "/k", "GET", {}, dict(headers), secret)
    headers["authorization"] = f"OSS {ak}:{sig}"
    return SignedRequest("GET", "bkt", "k", [], headers)


def _code(req: SignedRequest) -> str:
    with pytest.raises(AuthError) as err:
        verify(req, CREDS)
    return err.value.code


@pytest.mark.parametrize("make", [_v4_request, _v1_request])
def test_verify_accepts_and_refuses(make):
    ok = verify(make(), CREDS)
    assert ok.credential.principal == "alice"
    assert _code(make(secret="wrong")) == "SignatureDoesNotMatch"
    assert _code(make(ak="NOPE")) == "InvalidAccessKeyId"
    assert _code(make(when=time.time() - 16 * 60)) == "RequestTimeTooSkewed"
    assert _code(make(when=time.time() + 16 * 60)) == "RequestTimeTooSkewed"
    verify(make(when=time.time() - 14 * 60), CREDS)  # inside the 15 minutes


def test_verify_refuses_tampering_and_missing_auth():
    req = _v4_request()
    tampered = SignedRequest(req.method, req.bucket, "other-key", req.query, req.headers)
    assert _code(tampered) == "SignatureDoesNotMatch"
    tampered = SignedRequest(req.method, req.bucket, req.key, [("versionId", "x")], req.headers)
    assert _code(tampered) == "SignatureDoesNotMatch"
    tampered = SignedRequest("DELETE", req.bucket, req.key, req.query, req.headers)
    assert _code(tampered) == "SignatureDoesNotMatch"
    assert _code(_v4_request(scope_date="20000101")) == "SignatureDoesNotMatch"
    no_auth = SignedRequest("GET", "bkt", "k", [], {"date": formatdate(usegmt=True)})
    assert _code(no_auth) == "AccessDenied"


def test_errors_never_echo_the_secret():
    for make in (_v4_request, _v1_request):
        with pytest.raises(AuthError) as err:
            verify(make(secret="wrong"), CREDS)
        assert "s3cr3t" not in str(err.value) and "wrong" not in str(err.value)
