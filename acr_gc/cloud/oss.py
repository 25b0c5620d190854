"""OSS (API 2019-05-17) through ``alibabacloud_oss20190517``: the registry's bucket.

Every call is the SDK client's generic ``execute`` (the OSS gateway signs with
OSS4-HMAC-SHA256 and parses the XML body by action name), with the same ``Params`` the
SDK's typed methods build; we read the gateway's parsed dict instead of the typed
response models (two model layers that do not always agree). ``GetBucketStat`` has no
SDK method at all: the same ``execute`` with ``pathname='/?stat'``.

IP and loopback endpoints get ``endpoint_type='ip'`` (path-style ``/<bucket>/…``; plain
HTTP only for loopback, the emulator); real endpoints use the normal virtual-host style over
HTTPS. Thread safety: one SDK client per thread, as in :mod:`acr_gc.cloud.acr`.
"""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any

from acr_gc.cloud import calls
from acr_gc.cloud.credentials import ResolvedCredentials, resolve
from acr_gc.cloud.errors import NotFound
from acr_gc.config import Api, Target

SERVICE = "OSS"
API_VERSION = "2019-05-17"
MAX_KEYS = 1000


@dataclass(frozen=True)
class BucketStat:
    """GetBucketStat's figures. OSS computes them periodically (they lag by an hour or
    more): ``taken_at`` is when they hold — their ``LastModifiedTime`` — and only without
    one the time of the answer (its ``Date``). ``asked_at`` is the answer's ``Date``."""

    storage_bytes: int
    object_count: int
    taken_at: datetime  # when the figures hold (aware UTC)
    last_modified: datetime | None = None  # the service's own stat time, when given
    asked_at: datetime | None = None  # the cloud's clock when it answered


@dataclass(frozen=True)
class BucketInfo:
    name: str
    location: str | None
    storage_class: str | None
    versioning: str | None
    created: datetime | None


@dataclass(frozen=True)
class LifecycleRule:
    """One rule of GetBucketLifecycle, every element that limits which objects it acts on
    included (the release window must know whether the registry's objects can escape it)."""

    id: str
    prefix: str
    status: str  # Enabled | Disabled
    expiration_days: int | None
    noncurrent_days: int | None
    tags: tuple[tuple[str, str], ...] = ()  # rule-level Tag elements: only objects carrying all
    # Filter/Not elements, (Prefix, Tags) each: objects under the prefix (with the tags) left out
    nots: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = ()
    object_size_greater_than: int | None = None  # Filter/ObjectSizeGreaterThan
    object_size_less_than: int | None = None  # Filter/ObjectSizeLessThan
    created_before_date: str | None = None  # Expiration/CreatedBeforeDate

    @property
    def enabled(self) -> bool:
        return self.status.lower() == "enabled"


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    etag: str | None
    last_modified: datetime | None


@dataclass(frozen=True)
class ObjectData:
    key: str
    data: bytes
    etag: str | None


def _as_list(value: Any) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _int(value: Any, default: int | None = None) -> int | None:
    if value is None or value == "":
        return default
    return int(value)


def _time(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    text = str(value).strip()
    try:
        if text.isdigit():
            return datetime.fromtimestamp(int(text), tz=timezone.utc)
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        try:
            parsed = parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
    return parsed.replace(tzinfo=timezone.utc) if parsed.tzinfo is None else parsed.astimezone(timezone.utc)


class OssClient:
    """Typed calls on one bucket (``target.bucket``)."""

    def __init__(
        self,
        target: Target,
        api: Api | None = None,
        *,
        credentials: ResolvedCredentials | None = None,
        bucket: str | None = None,
        backoff: calls.Backoff = calls.DEFAULT_BACKOFF,
    ) -> None:
        self.target = target
        self.api = api or Api()
        self.bucket = bucket or target.bucket
        self.backoff = backoff
        self._credentials = credentials or resolve(target)
        scheme, host = calls.split_endpoint(target.resolved_oss_endpoint)
        self.endpoint = host
        self.path_style = calls.is_loopback_or_ip(host)
        self.protocol = calls.protocol_for(scheme, host)
        self._local = threading.local()

    def __repr__(self) -> str:
        return (f"OssClient(bucket={self.bucket!r}, endpoint={self.endpoint!r}, protocol={self.protocol!r}, "
                f"credentials={self._credentials.source!r})")

    # -- plumbing

    def _sdk(self):
        client = getattr(self._local, "client", None)
        if client is None:
            from alibabacloud_oss20190517.client import Client
            from alibabacloud_tea_openapi.utils_models import Config

            connect_ms, read_ms = calls.runtime_timeouts_ms(self.api)
            config = Config(
                credential=self._credentials.credential,
                endpoint=self.endpoint,
                region_id=self.target.region,
                protocol=self.protocol,
                connect_timeout=connect_ms,
                read_timeout=read_ms,
            )
            if self.path_style:
                config.endpoint_type = "ip"
            client = Client(config)
            self._local.client = client
        return client

    def _runtime(self):
        from alibabacloud_tea_util.models import RuntimeOptions

        connect_ms, read_ms = calls.runtime_timeouts_ms(self.api)
        return RuntimeOptions(connect_timeout=connect_ms, read_timeout=read_ms,
                              max_idle_conns=calls.pool_size(self.api), autoretry=False)

    def _execute(
        self,
        action: str,
        method: str,
        pathname: str,
        *,
        key: str | None = None,
        query: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        body: Any = None,
        stream: Callable[[], Any] | None = None,
        req_body_type: str = "xml",
        body_type: str = "xml",
        idempotent: bool = True,
    ) -> dict:
        """One OSS action through ``execute``; returns {'body', 'headers', 'statusCode'}."""
        from alibabacloud_tea_openapi.utils_models import OpenApiRequest, Params

        resource = f"{self.bucket}/{key}" if key is not None else self.bucket

        def run() -> dict:
            params = Params(action=action, version=API_VERSION, protocol=self.protocol, pathname=pathname,
                            method=method, auth_type="AK", style="ROA", req_body_type=req_body_type,
                            body_type=body_type)
            request = OpenApiRequest(host_map={"bucket": self.bucket}, headers=dict(headers or {}),
                                     query=dict(query or {}), body=body,
                                     stream=stream() if stream is not None else None)
            response = self._sdk().execute(params, request, self._runtime())
            if body_type == "binary":  # read the stream inside the attempt (a cut body is retried)
                raw = response.get("body")
                if raw is not None and hasattr(raw, "read"):
                    response["body"] = raw.read()
            return response

        return calls.call(SERVICE, action, resource, run, api=self.api, idempotent=idempotent, backoff=self.backoff)

    # -- bucket

    def bucket_stat(self) -> BucketStat:
        response = self._execute("GetBucketStat", "GET", "/?stat")
        stat = (response.get("body") or {}).get("BucketStat") or {}
        asked_at = _response_date(response)
        last = _int(stat.get("LastModifiedTime"))
        last_modified = datetime.fromtimestamp(last, tz=timezone.utc) if last else None
        return BucketStat(
            storage_bytes=_int(stat.get("Storage"), 0) or 0,
            object_count=_int(stat.get("ObjectCount"), 0) or 0,
            taken_at=last_modified or asked_at or datetime.now(timezone.utc),
            last_modified=last_modified,
            asked_at=asked_at,
        )

    def bucket_info(self) -> BucketInfo:
        response = self._execute("GetBucketInfo", "GET", "/?bucketInfo")
        bucket = ((response.get("body") or {}).get("BucketInfo") or {}).get("Bucket") or {}
        return BucketInfo(
            name=str(bucket.get("Name") or self.bucket),
            location=bucket.get("Location") or None,
            storage_class=bucket.get("StorageClass") or None,
            versioning=bucket.get("Versioning") or None,
            created=_time(bucket.get("CreationDate")),
        )

    def get_versioning(self) -> str | None:
        """``"Enabled"``, ``"Suspended"``, or None (versioning never turned on)."""
        response = self._execute("GetBucketVersioning", "GET", "/?versioning")
        conf = (response.get("body") or {}).get("VersioningConfiguration") or {}
        status = conf.get("Status") if isinstance(conf, dict) else None
        return str(status) if status else None

    def get_lifecycle(self) -> list[LifecycleRule]:
        """The bucket's lifecycle rules, [] when it has none (NoSuchLifecycle)."""
        try:
            response = self._execute("GetBucketLifecycle", "GET", "/?lifecycle")
        except NotFound as err:
            if err.code == "NoSuchLifecycle":
                return []
            raise
        conf = (response.get("body") or {}).get("LifecycleConfiguration") or {}
        rules = []
        for rule in _as_list(conf.get("Rule") if isinstance(conf, dict) else None):
            expiration = rule.get("Expiration") or {}
            noncurrent = rule.get("NoncurrentVersionExpiration") or {}
            filters = rule.get("Filter") if isinstance(rule.get("Filter"), dict) else {}
            prefix = rule.get("Prefix")
            if prefix is None:
                prefix = filters.get("Prefix")
            rules.append(LifecycleRule(
                id=str(rule.get("ID") or ""),
                prefix=str(prefix or ""),
                status=str(rule.get("Status") or ""),
                expiration_days=_int(expiration.get("Days")) if isinstance(expiration, dict) else None,
                noncurrent_days=_int(noncurrent.get("NoncurrentDays")) if isinstance(noncurrent, dict) else None,
                tags=_tags(rule.get("Tag")) + _tags(filters.get("Tag")),
                nots=tuple((str(n.get("Prefix") or ""), _tags(n.get("Tag")))
                           for n in _as_list(filters.get("Not")) if isinstance(n, dict)),
                object_size_greater_than=_int(filters.get("ObjectSizeGreaterThan")),
                object_size_less_than=_int(filters.get("ObjectSizeLessThan")),
                created_before_date=_created_before(rule),
            ))
        return rules

    # -- policy

    def get_policy(self) -> dict | None:
        """The bucket policy document, or None when the bucket has none (NoSuchBucketPolicy)."""
        try:
            response = self._execute("GetBucketPolicy", "GET", "/?policy", req_body_type="json", body_type="string")
        except NotFound as err:
            if err.code == "NoSuchBucketPolicy":
                return None
            raise
        text = response.get("body")
        if isinstance(text, bytes):
            text = text.decode("utf-8")
        if not text:
            return None
        return json.loads(text) if isinstance(text, str) else dict(text)

    def put_policy(self, policy: dict) -> None:
        document = json.dumps(policy, separators=(",", ":"), sort_keys=False)
        self._execute("PutBucketPolicy", "PUT", "/?policy", body=document, req_body_type="json", body_type="none")

    def delete_policy(self) -> None:
        """Delete the bucket policy; a bucket without one is fine (idempotent)."""
        try:
            self._execute("DeleteBucketPolicy", "DELETE", "/?policy")
        except NotFound as err:
            if err.code != "NoSuchBucketPolicy":
                raise

    # -- objects

    def put_object(self, key: str, data: bytes, *, content_type: str | None = None) -> str | None:
        """Write one object; returns its ETag."""
        headers = {"content-type": content_type} if content_type else None
        response = self._execute("PutObject", "PUT", f"/{key}", key=key, headers=headers,
                                 stream=lambda: io.BytesIO(data), req_body_type="binary", body_type="none")
        return _etag(response.get("headers"))

    def get_object(self, key: str) -> ObjectData:
        response = self._execute("GetObject", "GET", f"/{key}", key=key, body_type="binary")
        data = response.get("body") or b""
        if isinstance(data, str):
            data = data.encode("utf-8")
        return ObjectData(key, bytes(data), _etag(response.get("headers")))

    def head_object(self, key: str) -> ObjectInfo:
        try:
            response = self._execute("HeadObject", "HEAD", f"/{key}", key=key, body_type="none")
        except NotFound as err:
            if err.code == "404":  # a HEAD answer has no body to carry the code
                raise NotFound(err.service, err.action, err.resource, "NoSuchKey", 404,
                               "the object does not exist", err.request_id, attempts=err.attempts) from None
            raise
        headers = {k.lower(): v for k, v in (response.get("headers") or {}).items()}
        return ObjectInfo(key, _int(headers.get("content-length"), 0) or 0, _etag(headers),
                          _time(headers.get("last-modified")))

    def delete_object(self, key: str) -> None:
        """Delete one object (OSS answers 204 whether or not it existed)."""
        self._execute("DeleteObject", "DELETE", f"/{key}", key=key, body_type="none")

    def iter_object_pages(self, prefix: str | None = None, max_keys: int = MAX_KEYS) -> Iterator[list[ObjectInfo]]:
        if not 1 <= max_keys <= MAX_KEYS:
            raise ValueError(f"max_keys must be within 1..{MAX_KEYS}")
        marker: str | None = None
        while True:
            query = {"max-keys": str(max_keys)}
            if prefix:
                query["prefix"] = prefix
            if marker:
                query["marker"] = marker
            response = self._execute("ListObjects", "GET", "/", query=query)
            result = (response.get("body") or {}).get("ListBucketResult") or {}
            items = [
                ObjectInfo(str(c.get("Key")), _int(c.get("Size"), 0) or 0, _strip_etag(c.get("ETag")),
                           _time(c.get("LastModified")))
                for c in _as_list(result.get("Contents"))
            ]
            yield items
            truncated = result.get("IsTruncated")
            truncated = truncated if isinstance(truncated, bool) else str(truncated).lower() == "true"
            if not truncated or not items:
                return
            marker = result.get("NextMarker") or items[-1].key

    def list_objects(self, prefix: str | None = None, max_keys: int = MAX_KEYS) -> list[ObjectInfo]:
        return [o for page in self.iter_object_pages(prefix, max_keys) for o in page]


def _tags(value: Any) -> tuple[tuple[str, str], ...]:
    """``<Tag><Key/><Value/></Tag>`` elements (one parses as a dict, several as a list)."""
    return tuple((str(t.get("Key") or ""), str(t.get("Value") or "")) for t in _as_list(value) if isinstance(t, dict))


def _created_before(rule: dict) -> str | None:
    """The rule's ``Expiration/CreatedBeforeDate`` (the date form of expiration)."""
    for action in _as_list(rule.get("Expiration")):
        if isinstance(action, dict) and action.get("CreatedBeforeDate"):
            return str(action["CreatedBeforeDate"])
    return None


def _response_date(response: dict) -> datetime | None:
    """The cloud's own time (the ``Date`` header), so samples follow the cloud's clock."""
    headers = {str(k).lower(): v for k, v in (response.get("headers") or {}).items()}
    try:
        return parsedate_to_datetime(headers["date"]).astimezone(timezone.utc) if headers.get("date") else None
    except (TypeError, ValueError):
        return None


def _strip_etag(value: Any) -> str | None:
    return str(value).strip('"') if value else None


def _etag(headers: Any) -> str | None:
    if not headers:
        return None
    lowered = {str(k).lower(): v for k, v in dict(headers).items()}
    return _strip_etag(lowered.get("etag"))
