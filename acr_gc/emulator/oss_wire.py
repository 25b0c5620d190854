"""The emulated OSS (API version 2019-05-17) on the wire: path-style HTTP, XML bodies.

``create_app(state)`` answers what ``alibabacloud_oss20190517.client.Client`` (with
``endpoint_type='ip'``) and ``oss2`` send: ``/<bucket>/<key>`` paths, signatures verified
on every request (``oss_signing``), the bucket policy enforced per principal
(``policy``), the storage backend (``storage``) as the single source of truth.

The Host header is never used for routing: the tea SDK sends ``Host: <ip:port>/<bucket>``,
oss2 a plain ``Host: <ip:port>``; both reach the same handler through the path.

Everything runs in the event loop thread (async handlers, no threadpool), as the state
object requires.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import uuid
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, quote
from xml.sax.saxutils import escape

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from acr_gc.emulator import oss_signing, policy
from acr_gc.emulator.storage import Bucket, NoSuchBucket, ObjectVersion

if TYPE_CHECKING:  # the server imports the real one; tests may pass any object with the same attributes
    from acr_gc.emulator.state import EmulatorState

XML_DECL = '<?xml version="1.0" encoding="UTF-8"?>\n'
OWNER_ID = "1000000000000000"
OWNER_NAME = "acr-gc-emulator"
HOST_ID = "oss-emulator.local"
MAX_KEYS_DEFAULT = 100
MAX_KEYS_LIMIT = 1000
CRC_LIMIT = 1 << 20  # x-oss-hash-crc64ecma is computed for bodies up to this size (pure Python CRC)
POLICY_DENIED = "You have no right to access this object because of bucket acl."


# ---- small helpers ------------------------------------------------------------------------


def new_request_id() -> str:
    return uuid.uuid4().hex[:24].upper()


def _iso(t: datetime) -> str:
    # OSS lists times to the second, always with ".000Z" (oss2 parses exactly this form)
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _http_date(t: datetime) -> str:
    return format_datetime(t.astimezone(timezone.utc), usegmt=True)


def _x(value) -> str:
    return escape(str(value))


def _el(tag: str, value) -> str:
    if value is None or value == "":
        return f"<{tag}></{tag}>"
    return f"<{tag}>{_x(value)}</{tag}>"


def _owner() -> str:
    return f"<Owner>{_el('ID', OWNER_ID)}{_el('DisplayName', OWNER_NAME)}</Owner>"


def _crc_table() -> list[int]:
    poly = 0xC96C5795D7870F42
    table = []
    for n in range(256):
        crc = n
        for _ in range(8):
            crc = (crc >> 1) ^ poly if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC_TABLE = _crc_table()


def crc64_ecma(data: bytes) -> int:
    """CRC-64/XZ (ECMA-182, reflected), the value OSS returns in ``x-oss-hash-crc64ecma``."""
    crc = 0xFFFFFFFFFFFFFFFF
    table = _CRC_TABLE
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFFFFFFFFFF


class OssError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def error_response(
    status: int,
    code: str,
    message: str,
    request_id: str | None = None,
    headers: dict[str, str] | None = None,
    head: bool = False,
) -> Response:
    """The real OSS error: an XML ``<Error>`` body and the ``x-oss-request-id`` header.

    ``head=True`` (an answer to a HEAD request) sends the headers only, as OSS does.
    """
    request_id = request_id or new_request_id()
    all_headers = {"x-oss-request-id": request_id, "server": "AliyunOSS"}
    all_headers.update(headers or {})
    if head:
        return Response(b"", status_code=status, headers=all_headers)
    body = (
        f"{XML_DECL}<Error>{_el('Code', code)}{_el('Message', message)}"
        f"{_el('RequestId', request_id)}{_el('HostId', HOST_ID)}</Error>"
    )
    return Response(body.encode("utf-8"), status_code=status, headers=all_headers, media_type="application/xml")


def _xml(body: str, request_id: str, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    all_headers = {"x-oss-request-id": request_id, "server": "AliyunOSS"}
    all_headers.update(headers or {})
    return Response((XML_DECL + body).encode("utf-8"), status_code=status, headers=all_headers, media_type="application/xml")


def _empty(request_id: str, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    all_headers = {"x-oss-request-id": request_id, "server": "AliyunOSS"}
    all_headers.update(headers or {})
    return Response(b"", status_code=status, headers=all_headers)


def _max_keys(params: dict[str, str]) -> int:
    raw = params.get("max-keys")
    if raw is None or raw == "":
        return MAX_KEYS_DEFAULT
    try:
        value = int(raw)
    except ValueError:
        raise OssError(400, "InvalidArgument", f"max-keys {raw!r} is not an integer.") from None
    if not 1 <= value <= MAX_KEYS_LIMIT:
        raise OssError(400, "InvalidArgument", f"max-keys must be between 1 and {MAX_KEYS_LIMIT}.")
    return value


def _encoder(params: dict[str, str]):
    kind = params.get("encoding-type")
    if kind is None or kind == "":
        return None, (lambda s: s)
    if kind != "url":
        raise OssError(400, "InvalidArgument", "encoding-type must be url.")
    return "url", (lambda s: quote(s, safe="/"))


def _version_id_header(bucket: Bucket, version: ObjectVersion) -> dict[str, str]:
    return {"x-oss-version-id": version.version_id} if bucket.versioning is not None else {}


def _object_headers(bucket: Bucket, v: ObjectVersion, crc: bool) -> dict[str, str]:
    headers = {
        "content-type": v.content_type,
        "etag": f'"{v.etag}"',
        "last-modified": _http_date(v.last_modified),
        "x-oss-object-type": "Normal",
        "x-oss-storage-class": "Standard",
        "accept-ranges": "bytes",
    }
    headers.update(_version_id_header(bucket, v))
    if crc and v.size <= CRC_LIMIT:
        headers["x-oss-hash-crc64ecma"] = str(crc64_ecma(v.content))
    return headers


# ---- listing ------------------------------------------------------------------------------


def _collapse(key: str, prefix: str, delimiter: str) -> str | None:
    """The common prefix ``key`` rolls up into under ``delimiter``, or None."""
    if not delimiter:
        return None
    idx = key.find(delimiter, len(prefix))
    if idx < 0:
        return None
    return key[: idx + len(delimiter)]


def _list_keys(bucket: Bucket, prefix: str, after: str, delimiter: str, limit: int):
    """Current keys and common prefixes after ``after`` (exclusive), in order.

    Returns ``(entries, truncated)``; each entry is ``("key", name)`` or ``("prefix", p)``.
    A common prefix counts once; keys under a common prefix that sorts at or before
    ``after`` are skipped (so a NextMarker that is a common prefix pages correctly).
    """
    entries: list[tuple[str, str]] = []
    seen_prefix: str | None = None
    for key in bucket.iter_current_keys(prefix, after):
        common = _collapse(key, prefix, delimiter)
        if common is not None:
            if common == seen_prefix or (after and common <= after and after.startswith(common)):
                continue
            if len(entries) == limit:
                return entries, True
            entries.append(("prefix", common))
            seen_prefix = common
            continue
        if len(entries) == limit:
            return entries, True
        entries.append(("key", key))
    return entries, False


def _contents_xml(bucket: Bucket, key: str, enc, owner: bool = True) -> str:
    v = bucket.current(key)
    assert v is not None
    return (
        "<Contents>"
        f"{_el('Key', enc(v.key))}{_el('LastModified', _iso(v.last_modified))}"
        f"{_el('ETag', chr(34) + v.etag + chr(34))}{_el('Type', 'Normal')}{_el('Size', v.size)}"
        f"{_el('StorageClass', 'Standard')}{_owner() if owner else ''}"
        "</Contents>"
    )


def _tag_xml(tag) -> str:
    return f"<Tag>{_el('Key', tag.key)}{_el('Value', tag.value)}</Tag>"


def _token_encode(value: str) -> str:
    return base64.urlsafe_b64encode(value.encode("utf-8")).decode("ascii")


def _token_decode(token: str) -> str:
    try:
        return base64.urlsafe_b64decode(token.encode("ascii")).decode("utf-8")
    except (binascii.Error, UnicodeError, ValueError):
        raise OssError(400, "InvalidArgument", "The continuation token provided is incorrect.") from None


# ---- which operation a request asks for ---------------------------------------------------------

# the policy action an operation needs when it is not "oss:" + its own name; None: never refused
# (the bucket owner manages the policy, so a policy statement never locks it out)
_POLICY_ACTION: dict[str, str | None] = {
    "ListObjectsV2": "oss:ListObjects",
    "HeadObject": "oss:GetObject",
    "GetBucketPolicy": None,
    "PutBucketPolicy": None,
    "DeleteBucketPolicy": None,
}


def _unsupported_object_subresources(params: dict[str, str]) -> set[str]:
    return set(params) & (oss_signing.V1_SUBRESOURCES - {"versionId"} - {k for k in params if k.startswith("response-")})


def operation_name(method: str, key: str, params: dict[str, str], headers: dict[str, str]) -> str | None:
    """The OSS API operation a request asks for, by its documented name (None: not implemented).

    The one classification of requests: the dispatcher answers by this name and a fault
    hold matches it, so the two can never disagree about what a request is.
    """
    if key:
        if _unsupported_object_subresources(params):
            return None
        if method == "PUT":
            return "CopyObject" if "x-oss-copy-source" in headers else "PutObject"
        return {"GET": "GetObject", "HEAD": "HeadObject", "DELETE": "DeleteObject"}.get(method)
    if method == "GET":
        for param, name in (("stat", "GetBucketStat"), ("bucketInfo", "GetBucketInfo"),
                            ("location", "GetBucketLocation"), ("versioning", "GetBucketVersioning"),
                            ("lifecycle", "GetBucketLifecycle")):  # fmt: skip
            if param in params:
                return name
    if "policy" in params:
        return {"GET": "GetBucketPolicy", "PUT": "PutBucketPolicy", "DELETE": "DeleteBucketPolicy"}.get(method)
    if method == "GET" and "versions" in params:
        return "ListObjectVersions"
    if method == "GET" and params.get("list-type") == "2":
        return "ListObjectsV2"
    if method == "GET" and not (set(params) & oss_signing.V1_SUBRESOURCES):
        return "ListObjects"
    return None


def operation_of(scope: dict) -> str | None:
    """``operation_name`` of a raw ASGI request (what the fault middleware sees)."""
    bucket, _, key = scope["path"].lstrip("/").partition("/")
    params = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True))
    headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]}
    return operation_name(scope["method"].upper(), key if bucket else "", params, headers)


# ---- the application ------------------------------------------------------------------------


class OssApp:
    def __init__(self, state: "EmulatorState"):
        self.state = state

    # -- entry --------------------------------------------------------------------------

    async def handle(self, request: Request) -> Response:
        request_id = new_request_id()
        method = request.method.upper()
        head = method == "HEAD"
        try:
            return await self._dispatch(request, method, request_id)
        except OssError as exc:
            return error_response(exc.status, exc.code, exc.message, request_id, exc.headers, head=head)
        except oss_signing.AuthError as exc:
            return error_response(exc.status, exc.code, exc.message, request_id, head=head)

    async def _dispatch(self, request: Request, method: str, request_id: str) -> Response:
        path = request.scope["path"]
        query_string = request.scope.get("query_string", b"").decode("latin-1")
        query = parse_qsl(query_string, keep_blank_values=True)
        params = dict(query)
        headers: dict[str, str] = {}
        for name, value in request.headers.items():
            headers[name] = headers[name] + "," + value if name in headers else value

        parts = path.lstrip("/").split("/", 1)
        bucket_name = parts[0]
        key = parts[1] if len(parts) == 2 else ""
        signed = oss_signing.SignedRequest(method=method, bucket=bucket_name, key=key, query=query, headers=headers)
        verified = oss_signing.verify(signed, self.state.credentials, real_now=self.state.wall_time())
        if not bucket_name:
            raise OssError(501, "NotImplemented", "The emulator serves bucket and object requests only (no ListBuckets).")
        try:
            bucket = self.state.storage.bucket(bucket_name)
        except NoSuchBucket:
            raise OssError(404, "NoSuchBucket", "The specified bucket does not exist.") from None
        if verified.region is not None and verified.region != bucket.region:
            raise OssError(
                400,
                "InvalidArgument",
                f"Invalid signing region in Authorization header: the bucket is in {bucket.region}.",
            )
        principal = verified.credential.principal
        self.state.storage.apply_lifecycle(self.state.now())
        operation = operation_name(method, key, params, headers)
        ctx = _Ctx(self, request, request_id, bucket, key, params, headers, principal, method, operation)
        if key:
            return await ctx.object_op()
        return await ctx.bucket_op()


class _Ctx:
    """One request being answered."""

    def __init__(self, app: OssApp, request, request_id, bucket: Bucket, key, params, headers, principal, method,
                 operation: str | None):  # fmt: skip
        self.app = app
        self.state = app.state
        self.request = request
        self.rid = request_id
        self.bucket = bucket
        self.key = key
        self.params = params
        self.headers = headers
        self.principal = principal
        self.method = method
        self.operation = operation

    def authorize(self) -> None:
        """Refuse the operation when the bucket policy denies it to this principal."""
        action = _POLICY_ACTION.get(self.operation, f"oss:{self.operation}")
        if action is None:
            return
        key = self.key or None
        if self.bucket.denies(self.principal, action, key):
            raise OssError(403, "AccessDenied", POLICY_DENIED)

    # -- bucket level -------------------------------------------------------------------

    async def bucket_op(self) -> Response:
        op = self.operation
        if op is None:
            raise OssError(
                501, "NotImplemented", f"The emulator does not implement {self.method} on a bucket with {sorted(self.params)}."
            )
        self.authorize()
        if op == "PutBucketPolicy":
            return await self.put_bucket_policy()
        if op == "DeleteBucketPolicy":
            self.bucket.policy = None
            return _empty(self.rid, 204)
        return {
            "GetBucketStat": self.get_bucket_stat,
            "GetBucketInfo": self.get_bucket_info,
            "GetBucketLocation": self.get_bucket_location,
            "GetBucketVersioning": self.get_bucket_versioning,
            "GetBucketLifecycle": self.get_bucket_lifecycle,
            "GetBucketPolicy": self.get_bucket_policy,
            "ListObjectVersions": self.list_object_versions,
            "ListObjectsV2": self.list_objects_v2,
            "ListObjects": self.list_objects,
        }[op]()

    def get_bucket_location(self) -> Response:
        return _xml(_el("LocationConstraint", f"oss-{self.bucket.region}"), self.rid)

    def get_bucket_versioning(self) -> Response:
        status = _el("Status", self.bucket.versioning) if self.bucket.versioning else ""
        return _xml(f"<VersioningConfiguration>{status}</VersioningConfiguration>", self.rid)

    def get_bucket_stat(self) -> Response:
        """The figures as of ``now - stat_delay_hours`` with that ``LastModifiedTime``: OSS's
        statistics are not real-time (the ``stat_delay_hours`` fault setting; 0: now)."""
        taken = self.state.now() - timedelta(hours=self.state.faults.stat_delay_hours)
        storage, objects, markers = self.bucket.stat_as_of(taken)
        zero_fields = [
            "MultipartPartCount", "MultipartPartStorage", "StandardMultipartPartCount", "StandardMultipartPartStorage",
            "InfrequentAccessStorage", "InfrequentAccessRealStorage", "InfrequentAccessObjectCount",
            "InfrequentMultipartPartCount", "InfrequentMultipartPartStorage",
            "ArchiveStorage", "ArchiveRealStorage", "ArchiveObjectCount", "ArchiveMultipartPartCount",
            "ArchiveMultipartPartStorage", "ColdArchiveStorage", "ColdArchiveRealStorage", "ColdArchiveObjectCount",
            "ColdArchiveMultipartPartCount", "ColdArchiveMultipartPartStorage", "DeepColdArchiveStorage",
            "DeepColdArchiveRealStorage", "DeepColdArchiveObjectCount", "DeepColdArchiveMultipartPartCount",
            "DeepColdArchiveMultipartPartStorage",
        ]  # fmt: skip
        body = (
            "<BucketStat>"
            f"{_el('Storage', storage)}{_el('ObjectCount', objects)}"
            f"{_el('MultipartUploadCount', 0)}{_el('LiveChannelCount', 0)}"
            f"{_el('LastModifiedTime', int(taken.timestamp()))}"
            f"{_el('StandardStorage', storage)}{_el('StandardObjectCount', objects)}"
            f"{_el('DeleteMarkerCount', markers)}"
            + "".join(_el(f, 0) for f in zero_fields)
            + "</BucketStat>"
        )
        return _xml(body, self.rid)

    def get_bucket_info(self) -> Response:
        b = self.bucket
        versioning = _el("Versioning", b.versioning) if b.versioning else ""
        body = (
            "<BucketInfo><Bucket>"
            f"{_el('AccessMonitor', 'Disabled')}{_el('CreationDate', _iso(b.created))}"
            f"{_el('ExtranetEndpoint', f'oss-{b.region}.aliyuncs.com')}"
            f"{_el('IntranetEndpoint', f'oss-{b.region}-internal.aliyuncs.com')}"
            f"{_el('Location', f'oss-{b.region}')}{_el('StorageClass', 'Standard')}"
            f"{_el('TransferAcceleration', 'Disabled')}{_el('CrossRegionReplication', 'Disabled')}"
            f"{_el('DataRedundancyType', 'LRS')}{_el('Name', b.name)}{_owner()}"
            f"<AccessControlList>{_el('Grant', 'private')}</AccessControlList>"
            f"<ServerSideEncryptionRule>{_el('SSEAlgorithm', 'None')}</ServerSideEncryptionRule>"
            f"{versioning}<BucketPolicy>{_el('LogBucket', '')}{_el('LogPrefix', '')}</BucketPolicy>"
            f"{_el('Comment', '')}{_el('BlockPublicAccess', 'false')}"
            "</Bucket></BucketInfo>"
        )
        return _xml(body, self.rid)

    def get_bucket_lifecycle(self) -> Response:
        rules = self.bucket.lifecycle
        if not rules:
            raise OssError(404, "NoSuchLifecycle", "No Row found in Lifecycle Table.")
        out = []
        for r in rules:
            parts = [_el("ID", r.id), _el("Prefix", r.prefix), _el("Status", r.status)]
            parts += [_tag_xml(t) for t in r.tags]
            filters = []
            if r.not_ is not None:
                filters.append("<Not>" + _el("Prefix", r.not_.prefix) + "".join(map(_tag_xml, r.not_.tags)) + "</Not>")
            if r.object_size_greater_than is not None:
                filters.append(_el("ObjectSizeGreaterThan", r.object_size_greater_than))
            if r.object_size_less_than is not None:
                filters.append(_el("ObjectSizeLessThan", r.object_size_less_than))
            if filters:
                parts.append("<Filter>" + "".join(filters) + "</Filter>")
            if r.expiration_days is not None:
                parts.append(f"<Expiration>{_el('Days', r.expiration_days)}</Expiration>")
            if r.created_before_date is not None:
                date = r.created_before_date.strftime("%Y-%m-%dT%H:%M:%S.000Z")
                parts.append(f"<Expiration>{_el('CreatedBeforeDate', date)}</Expiration>")
            if r.noncurrent_days is not None:
                parts.append(
                    f"<NoncurrentVersionExpiration>{_el('NoncurrentDays', r.noncurrent_days)}</NoncurrentVersionExpiration>"
                )
            out.append("<Rule>" + "".join(parts) + "</Rule>")
        return _xml("<LifecycleConfiguration>" + "".join(out) + "</LifecycleConfiguration>", self.rid)

    def get_bucket_policy(self) -> Response:
        if self.bucket.policy is None:
            raise OssError(404, "NoSuchBucketPolicy", "The bucket policy does not exist.")
        return Response(
            self.bucket.policy.encode("utf-8"),
            headers={"x-oss-request-id": self.rid, "server": "AliyunOSS"},
            media_type="application/json",
        )

    async def put_bucket_policy(self) -> Response:
        body = await self.request.body()
        try:
            policy.parse_policy(body)
        except policy.PolicyError as exc:
            raise OssError(400, exc.code, exc.message) from None
        self.bucket.policy = body.decode("utf-8")
        return _empty(self.rid, 200)

    def list_objects(self) -> Response:
        p = self.params
        prefix, marker, delimiter = p.get("prefix", ""), p.get("marker", ""), p.get("delimiter", "")
        max_keys = _max_keys(p)
        enc_type, enc = _encoder(p)
        entries, truncated = _list_keys(self.bucket, prefix, marker, delimiter, max_keys)
        body = [
            "<ListBucketResult>",
            _el("Name", self.bucket.name), _el("Prefix", enc(prefix)), _el("Marker", enc(marker)),
            _el("MaxKeys", max_keys), _el("Delimiter", enc(delimiter)), _el("IsTruncated", "true" if truncated else "false"),
        ]  # fmt: skip
        if enc_type:
            body.append(_el("EncodingType", enc_type))
        if truncated:
            body.append(_el("NextMarker", enc(entries[-1][1])))
        body += self._entries_xml(entries, enc, owner=True)
        body.append("</ListBucketResult>")
        return _xml("".join(body), self.rid)

    def list_objects_v2(self) -> Response:
        p = self.params
        prefix, delimiter = p.get("prefix", ""), p.get("delimiter", "")
        token = p.get("continuation-token")
        start_after = p.get("start-after", "")
        after = _token_decode(token) if token else start_after
        max_keys = _max_keys(p)
        enc_type, enc = _encoder(p)
        fetch_owner = p.get("fetch-owner", "").lower() == "true"
        entries, truncated = _list_keys(self.bucket, prefix, after, delimiter, max_keys)
        body = ["<ListBucketResult>", _el("Name", self.bucket.name), _el("Prefix", enc(prefix))]
        if start_after:
            body.append(_el("StartAfter", enc(start_after)))
        if token:
            body.append(_el("ContinuationToken", token))
        body += [_el("MaxKeys", max_keys), _el("Delimiter", enc(delimiter)), _el("IsTruncated", "true" if truncated else "false")]
        if enc_type:
            body.append(_el("EncodingType", enc_type))
        body.append(_el("KeyCount", len(entries)))
        if truncated:
            body.append(_el("NextContinuationToken", _token_encode(entries[-1][1])))
        body += self._entries_xml(entries, enc, owner=fetch_owner)
        body.append("</ListBucketResult>")
        return _xml("".join(body), self.rid)

    def _entries_xml(self, entries, enc, owner: bool) -> list[str]:
        contents = [_contents_xml(self.bucket, name, enc, owner) for kind, name in entries if kind == "key"]
        prefixes = [f"<CommonPrefixes>{_el('Prefix', enc(name))}</CommonPrefixes>" for kind, name in entries if kind == "prefix"]
        return contents + prefixes

    def list_object_versions(self) -> Response:
        p = self.params
        prefix, delimiter = p.get("prefix", ""), p.get("delimiter", "")
        key_marker, vid_marker = p.get("key-marker", ""), p.get("version-id-marker", "")
        if vid_marker and not key_marker:
            raise OssError(400, "InvalidArgument", "A version-id-marker cannot be specified without a key-marker.")
        max_keys = _max_keys(p)
        enc_type, enc = _encoder(p)
        entries: list[tuple[str, object]] = []
        truncated = False
        seen_prefix = None
        for v in self._version_stream(prefix, key_marker, vid_marker):
            common = _collapse(v.key, prefix, delimiter)
            if common is not None:
                if common == seen_prefix or (key_marker and common <= key_marker and key_marker.startswith(common)):
                    continue
                if len(entries) == max_keys:
                    truncated = True
                    break
                entries.append(("prefix", common))
                seen_prefix = common
                continue
            if len(entries) == max_keys:
                truncated = True
                break
            entries.append(("version", v))
        body = [
            "<ListVersionsResult>", _el("Name", self.bucket.name), _el("Prefix", enc(prefix)),
            _el("KeyMarker", enc(key_marker)), _el("VersionIdMarker", vid_marker), _el("MaxKeys", max_keys),
            _el("Delimiter", enc(delimiter)), _el("IsTruncated", "true" if truncated else "false"),
        ]  # fmt: skip
        if enc_type:
            body.append(_el("EncodingType", enc_type))
        if truncated:
            kind, last = entries[-1]
            if kind == "prefix":
                body += [_el("NextKeyMarker", enc(last)), _el("NextVersionIdMarker", "")]
            else:
                body += [_el("NextKeyMarker", enc(last.key)), _el("NextVersionIdMarker", last.version_id)]
        for kind, item in entries:
            if kind == "prefix":
                continue
            v = item
            latest = "true" if self.bucket.is_latest(v) else "false"
            common = f"{_el('Key', enc(v.key))}{_el('VersionId', v.version_id)}{_el('IsLatest', latest)}{_el('LastModified', _iso(v.last_modified))}"
            if v.delete_marker:
                body.append(f"<DeleteMarker>{common}{_owner()}</DeleteMarker>")
            else:
                body.append(
                    f"<Version>{common}{_el('ETag', chr(34) + v.etag + chr(34))}{_el('Type', 'Normal')}"
                    f"{_el('Size', v.size)}{_el('StorageClass', 'Standard')}{_owner()}</Version>"
                )
        body += [f"<CommonPrefixes>{_el('Prefix', enc(name))}</CommonPrefixes>" for kind, name in entries if kind == "prefix"]
        body.append("</ListVersionsResult>")
        return _xml("".join(body), self.rid)

    def _version_stream(self, prefix: str, key_marker: str, vid_marker: str):
        """Versions in listing order after (key_marker, vid_marker)."""
        if vid_marker and key_marker.startswith(prefix):
            rest = self.bucket.versions(key_marker)
            ids = [v.version_id for v in rest]
            if vid_marker in ids:
                yield from rest[ids.index(vid_marker) + 1 :]
        for key in self.bucket.keys(prefix, key_marker):
            yield from self.bucket.versions(key)

    # -- object level -------------------------------------------------------------------

    async def object_op(self) -> Response:
        op = self.operation
        unsupported = _unsupported_object_subresources(self.params)
        if unsupported:
            raise OssError(501, "NotImplemented", f"The emulator does not implement object sub-resources {sorted(unsupported)}.")
        if op == "CopyObject":
            raise OssError(501, "NotImplemented", "The emulator does not implement CopyObject.")
        if op is None:
            raise OssError(
                405, "MethodNotAllowed", f"The specified method {self.method} is not allowed against this resource."
            )
        self.authorize()
        if op == "PutObject":
            return await self.put_object()
        if op == "DeleteObject":
            return self.delete_object()
        return self.get_object(head=op == "HeadObject")

    async def put_object(self) -> Response:
        if self.headers.get("x-oss-forbid-overwrite", "").strip('"').lower() == "true" and self.bucket.current(self.key):
            raise OssError(409, "FileAlreadyExists", "The object you specified already exists and can not be overwritten.")
        data = await self.request.body()
        md5 = hashlib.md5(data).digest()
        claimed = self.headers.get("content-md5")
        if claimed is not None:
            try:
                claimed_bytes = base64.b64decode(claimed, validate=True)
            except (binascii.Error, ValueError):
                raise OssError(400, "InvalidDigest", "The Content-MD5 you specified is not valid.") from None
            if claimed_bytes != md5:
                raise OssError(400, "BadDigest", "The Content-MD5 you specified did not match what was received.")
        content_type = self.headers.get("content-type") or "application/octet-stream"
        version = self.bucket.put_object(self.key, self.state.now(), data=data, content_type=content_type)
        headers = {
            "etag": f'"{version.etag}"',
            "content-md5": base64.b64encode(md5).decode("ascii"),
            "x-oss-hash-crc64ecma": str(crc64_ecma(data)),
        }
        headers.update(_version_id_header(self.bucket, version))
        return _empty(self.rid, 200, headers)

    def _find_version(self, version_id: str | None) -> ObjectVersion:
        if version_id is None:
            v = self.bucket.current(self.key)
            if v is None:
                markers = self.bucket.versions(self.key)
                extra = {}
                if markers and markers[0].delete_marker:
                    extra = {"x-oss-delete-marker": "true", "x-oss-version-id": markers[0].version_id}
                raise OssError(404, "NoSuchKey", "The specified key does not exist.", extra)
            return v
        for x in self.bucket.versions(self.key):
            if x.version_id == version_id:
                if x.delete_marker:
                    raise OssError(
                        405,
                        "MethodNotAllowed",
                        "The specified method is not allowed against this resource.",
                        {"x-oss-delete-marker": "true", "x-oss-version-id": x.version_id},
                    )
                return x
        raise OssError(404, "NoSuchVersion", "The specified version does not exist.")

    def get_object(self, head: bool) -> Response:
        v = self._find_version(self.params.get("versionId"))
        headers = _object_headers(self.bucket, v, crc=True)
        headers["x-oss-request-id"] = self.rid
        headers["server"] = "AliyunOSS"
        for param, header in (("response-content-type", "content-type"), ("response-cache-control", "cache-control"),
                              ("response-content-disposition", "content-disposition"),
                              ("response-content-encoding", "content-encoding"),
                              ("response-content-language", "content-language"), ("response-expires", "expires")):  # fmt: skip
            if self.params.get(param):
                headers[header] = self.params[param]
        if head:
            headers["content-length"] = str(v.size)
            return Response(b"", status_code=200, headers=headers)
        content = v.content
        rng = self.headers.get("range", "").strip().strip('"')
        if rng.startswith("bytes=") and "," not in rng and v.size > 0:
            start_s, _, end_s = rng[6:].partition("-")
            try:
                if start_s == "":
                    start, end = max(0, v.size - int(end_s)), v.size - 1
                else:
                    start = int(start_s)
                    end = min(int(end_s), v.size - 1) if end_s else v.size - 1
            except ValueError:
                start, end = 0, -1
            if 0 <= start <= end < v.size:
                headers.pop("x-oss-hash-crc64ecma", None)
                headers["content-range"] = f"bytes {start}-{end}/{v.size}"
                return Response(content[start : end + 1], status_code=206, headers=headers)
            if start >= v.size:
                raise OssError(416, "InvalidRange", "The requested range cannot be satisfied.")
        return Response(content, status_code=200, headers=headers)

    def delete_object(self) -> Response:
        version_id = self.params.get("versionId")
        headers: dict[str, str] = {}
        if version_id is not None:
            if version_id == "":
                raise OssError(400, "InvalidArgument", "versionId must not be empty.")
            target = next(
                (x for x in self.bucket.versions(self.key) if x.version_id == version_id), None
            )
            if target is None and version_id != "null":
                raise OssError(404, "NoSuchVersion", "The specified version does not exist.")
            self.bucket.delete_object(self.key, self.state.now(), version_id=version_id)
            headers["x-oss-version-id"] = version_id
            if target is not None and target.delete_marker:
                headers["x-oss-delete-marker"] = "true"
        else:
            marker = self.bucket.delete_object(self.key, self.state.now())
            if marker is not None:
                headers["x-oss-delete-marker"] = "true"
                headers["x-oss-version-id"] = marker.version_id
        return _empty(self.rid, 204, headers)


def create_app(state: "EmulatorState") -> Starlette:
    """The OSS ASGI app over ``state`` (reads ``state.credentials``, ``state.storage``, ``state.now()``)."""
    oss = OssApp(state)
    methods = ["GET", "HEAD", "PUT", "POST", "DELETE"]
    app = Starlette(
        routes=[Route("/{path:path}", oss.handle, methods=methods)],
        middleware=[Middleware(EmulatedDateHeader, state=state)],
    )
    app.state.oss = oss
    return app


class EmulatedDateHeader:
    """Every OSS answer carries ``Date`` on the emulated clock, as real OSS carries its own.

    Clients read the cloud's time from it (storage samples, the release window), so
    compressed emulated days are seen the same way real days would be.
    """

    def __init__(self, app, state: "EmulatorState"):
        self.app, self.state = app, state

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_date(message):
            if message["type"] == "http.response.start":
                date = format_datetime(self.state.now(), usegmt=True).encode()
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"date"]
                message = {**message, "headers": headers + [(b"date", date)]}
            await send(message)

        await self.app(scope, receive, send_with_date)


__all__ = ["create_app", "error_response", "crc64_ecma", "new_request_id", "OssApp"]
