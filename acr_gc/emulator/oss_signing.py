"""Server-side verification of OSS request signatures (V4 and the header-based V1).

The canonical forms are re-derived exactly as the clients compute them:

* OSS4-HMAC-SHA256 -- as ``alibabacloud_gateway_oss.Client.get_signature_v4`` (used by
  ``alibabacloud_oss20190517``): canonical URI ``/<bucket>/<key>`` path-encoded
  (``quote(safe='/~')``); canonical query of *every* query parameter, names and values
  percent-encoded (``quote(safe='~')``), sorted, ``k=v`` or bare ``k`` when the value is
  empty; canonical headers ``x-oss-*``, ``content-type`` and ``content-md5`` (plus any
  ``AdditionalHeaders``), lower-case, sorted, value trimmed; then the additional header
  names; then ``UNSIGNED-PAYLOAD``. Signing key: HMAC chain over
  ``"aliyun_v4"+secret`` -> date -> region -> ``oss`` -> ``aliyun_v4_request``.
* V1 (``Authorization: OSS <ak>:<sig>``, oss2's ``Auth`` and the gateway's ``v1``):
  base64 HMAC-SHA1 over ``VERB\\nContent-MD5\\nContent-Type\\nDate\\n`` + the sorted
  ``x-oss-*`` headers + ``/<bucket>/<key>`` + the OSS sub-resources of the query
  (decoded, sorted, ``?k=v&k``).

Errors carry the real OSS codes; their messages never include a secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Mapping, Sequence
from urllib.parse import quote

from acr_gc.emulator import dataset as ds

MAX_SKEW_SECONDS = 15 * 60

# Query parameters that are part of the V1 canonical resource: the union of oss2's
# ``Auth._subresource_key_set`` and the gateway's ``_default_signed_params``; any
# ``x-oss-*`` parameter is included too (as the gateway does).
V1_SUBRESOURCES = frozenset(
    """
    response-content-type response-content-language response-cache-control logging
    response-content-encoding acl uploadId uploads partNumber group link delete website
    location objectInfo objectMeta response-expires response-content-disposition cors
    lifecycle restore qos referer stat bucketInfo append position security-token live comp
    status vod startTime endTime x-oss-process symlink callback callback-var tagging
    encryption versions versioning versionId policy requestPayment x-oss-traffic-limit
    qosInfo asyncFetch x-oss-request-payer sequential inventory inventoryId
    continuation-token worm wormId wormExtend replication replicationLocation
    replicationProgress transferAcceleration cname metaQuery x-oss-ac-source-ip
    x-oss-ac-subnet-mask x-oss-ac-vpc-id x-oss-ac-forward-allow resourceGroup style
    styleName x-oss-async-process rtc accessPoint accessPointPolicy httpsConfig regionsV2
    publicAccessBlock policyStatus redundancyTransition redundancyType redundancyProgress
    dataAccelerator verbose accessPointForObjectProcess accessPointConfigForObjectProcess
    accessPointPolicyForObjectProcess bucketArchiveDirectRead responseHeader
    userDefinedLogFieldsConfig reservedcapacity requesterQosInfo qosRequester resourcePool
    resourcePoolInfo resourcePoolBuckets processConfiguration img virtualBucket copy
    userRegion partSize chunkSize partUploadId chunkNumber regionList eventnotification
    cacheConfiguration dfs dfsadmin dfssecurity x-oss-write-get-object-response
    x-oss-target-redundancy-type x-oss-redundancy-transition-taskid x-oss-access-point-name
    """.split()
)


class AuthError(Exception):
    """The request is refused; ``status``/``code``/``message`` go into the OSS error body."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True)
class SignedRequest:
    """What the verifier needs from an HTTP request (decoded path and query)."""

    method: str
    bucket: str  # "" for service-level requests
    key: str  # "" for bucket-level requests
    query: Sequence[tuple[str, str]]  # decoded, in wire order, blank values kept
    headers: Mapping[str, str]  # lower-case names


@dataclass(frozen=True)
class Verified:
    credential: ds.Credential
    scheme: str  # "OSS4-HMAC-SHA256" | "OSS"
    region: str | None  # the V4 scope's region; None for V1


def _hmac_sha256(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


def _resource_path(req: SignedRequest) -> str:
    if not req.bucket:
        return "/"
    return f"/{req.bucket}/{req.key}"


# ---- V4 ---------------------------------------------------------------------------------

_V4_FIELD = re.compile(r"\s*([A-Za-z]+)\s*=\s*([^,]*)\s*")


def parse_v4_authorization(value: str) -> dict[str, str]:
    body = value[len("OSS4-HMAC-SHA256") :].strip()
    fields: dict[str, str] = {}
    for part in body.split(","):
        m = _V4_FIELD.fullmatch(part)
        if not m:
            raise AuthError(400, "InvalidArgument", "Authorization header is not a valid OSS4-HMAC-SHA256 header.")
        fields[m.group(1)] = m.group(2).strip()
    if "Credential" not in fields or "Signature" not in fields:
        raise AuthError(400, "InvalidArgument", "Authorization header needs Credential and Signature.")
    return fields


def v4_canonical_request(req: SignedRequest, additional_headers: Sequence[str] = ()) -> str:
    uri = quote(_resource_path(req), safe="/~")
    query_map: dict[str, str | None] = {}
    for k, v in req.query:
        ek = quote(k, safe="~").replace("+", "%20")
        query_map[ek] = quote(v, safe="~").replace("+", "%20") if v else None
    canonical_query = "&".join(k if query_map[k] is None else f"{k}={query_map[k]}" for k in sorted(query_map))
    extra = {h.lower() for h in additional_headers}
    lines = []
    for name in sorted(req.headers):
        if name.startswith("x-oss-") or name in ("content-type", "content-md5") or name in extra:
            lines.append(f"{name}:{req.headers[name].strip()}\n")
    canonical_headers = "".join(lines)
    additional = ";".join(sorted(extra))
    payload = req.headers.get("x-oss-content-sha256", "UNSIGNED-PAYLOAD")
    return f"{req.method}\n{uri}\n{canonical_query}\n{canonical_headers}\n{additional}\n{payload}"


def v4_signature(secret: str, req: SignedRequest, date_time: str, region: str, additional_headers: Sequence[str] = ()) -> str:
    only_date = date_time[:8]
    key = _hmac_sha256(f"aliyun_v4{secret}".encode("utf-8"), only_date)
    for part in (region, "oss", "aliyun_v4_request"):
        key = _hmac_sha256(key, part)
    canonical = v4_canonical_request(req, additional_headers)
    scope = f"{only_date}/{region}/oss/aliyun_v4_request"
    string_to_sign = f"OSS4-HMAC-SHA256\n{date_time}\n{scope}\n{hashlib.sha256(canonical.encode('utf-8')).hexdigest()}"
    return hmac.new(key, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


# ---- V1 ---------------------------------------------------------------------------------


def v1_string_to_sign(req: SignedRequest) -> str:
    h = req.headers
    date = h.get("x-oss-date") or h.get("date", "")
    oss_headers = "".join(f"{k}:{h[k]}\n" for k in sorted(h) if k.startswith("x-oss-"))
    subs = sorted(
        ((k, v) for k, v in req.query if k in V1_SUBRESOURCES or k.startswith("x-oss-")), key=lambda kv: kv[0]
    )
    resource = _resource_path(req)
    if subs:
        resource += "?" + "&".join(f"{k}={v}" if v else k for k, v in subs)
    return f"{req.method}\n{h.get('content-md5', '')}\n{h.get('content-type', '')}\n{date}\n{oss_headers}{resource}"


def v1_signature(secret: str, req: SignedRequest) -> str:
    digest = hmac.new(secret.encode("utf-8"), v1_string_to_sign(req).encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


# ---- verification -----------------------------------------------------------------------


def _as_bytes(text: str) -> bytes:
    """A received signature as bytes: ``compare_digest`` raises TypeError on non-ASCII str."""
    return text.encode("utf-8", "backslashreplace")


def _check_skew(when: datetime, real_now: float) -> None:
    skew = abs(when.timestamp() - real_now)
    if skew > MAX_SKEW_SECONDS:
        raise AuthError(403, "RequestTimeTooSkewed", "The difference between the request time and the current time is too large.")


def _lookup(credentials: Mapping[str, ds.Credential], ak: str) -> ds.Credential:
    cred = credentials.get(ak)
    if cred is None:
        raise AuthError(403, "InvalidAccessKeyId", "The OSS Access Key Id you provided does not exist in our records.")
    return cred


def _mismatch() -> AuthError:
    return AuthError(403, "SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided. Check your key and signing method.")


def verify(
    req: SignedRequest,
    credentials: Mapping[str, ds.Credential],
    real_now: float | None = None,
) -> Verified:
    """Check the request's signature; returns who signed it or raises ``AuthError``."""
    real_now = time.time() if real_now is None else real_now
    auth = req.headers.get("authorization", "").strip()
    if not auth:
        raise AuthError(403, "AccessDenied", "AccessDenied: anonymous access is not allowed; sign the request.")
    if auth.startswith("OSS4-HMAC-SHA256"):
        fields = parse_v4_authorization(auth)
        scope = fields["Credential"].split("/")
        if len(scope) != 5 or scope[3] != "oss" or scope[4] != "aliyun_v4_request":
            raise AuthError(400, "InvalidArgument", "Credential must be <AccessKeyId>/<yyyymmdd>/<region>/oss/aliyun_v4_request.")
        ak, only_date, region = scope[0], scope[1], scope[2]
        cred = _lookup(credentials, ak)
        date_time = req.headers.get("x-oss-date", "")
        try:
            when = datetime.strptime(date_time, "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
        except ValueError:
            raise AuthError(403, "AccessDenied", "x-oss-date is missing or not in the form yyyymmddTHHMMSSZ.") from None
        _check_skew(when, real_now)
        if only_date != date_time[:8]:
            raise _mismatch()
        additional = [h for h in fields.get("AdditionalHeaders", "").split(";") if h]
        expected = v4_signature(cred.access_key_secret, req, date_time, region, additional)
        if not hmac.compare_digest(expected.encode(), _as_bytes(fields["Signature"].lower())):
            raise _mismatch()
        return Verified(cred, "OSS4-HMAC-SHA256", region)
    if auth.startswith("OSS "):
        ak, sep, signature = auth[4:].strip().rpartition(":")
        if not sep or not ak:
            raise AuthError(400, "InvalidArgument", "Authorization header must be OSS <AccessKeyId>:<Signature>.")
        cred = _lookup(credentials, ak)
        date_text = req.headers.get("x-oss-date") or req.headers.get("date")
        try:
            when = parsedate_to_datetime(date_text) if date_text else None
        except (TypeError, ValueError):
            when = None
        if when is None:
            raise AuthError(403, "AccessDenied", "The request has no valid Date header.")
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        _check_skew(when, real_now)
        if not hmac.compare_digest(v1_signature(cred.access_key_secret, req).encode(), _as_bytes(signature.strip())):
            raise _mismatch()
        return Verified(cred, "OSS", None)
    raise AuthError(400, "InvalidArgument", "Authorization header method is not supported (use OSS4-HMAC-SHA256 or OSS).")
