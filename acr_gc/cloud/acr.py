"""ACR Enterprise Edition (OpenAPI 2018-12-01) through ``alibabacloud_cr20181201``.

Typed, frozen results; every call through :func:`acr_gc.cloud.calls.call` (shared rate
limit, retries, timeouts, :class:`~acr_gc.cloud.errors.CloudError`). Listings come both
page by page (``iter_*_pages``, for batch-wise inventories) and whole (``list_*``).

Paging: ``PageNo``/``PageSize`` with ``TotalCount``; a listing stops as soon as
``TotalCount`` items have been read (so 0 items cost one request, ``PageSize`` items one,
``PageSize + 1`` two), or at the first empty page (the set shrank while being read, e.g.
during GC). ``PageSize`` defaults to the API maximum, 100 for every list action used here.

The GC actions (``gc_*``) are the emulator's own (the public API has none, DESIGN 6):
called through the same client's ``call_api``, so they are signed and parsed like the
real actions.

Thread safety: one SDK client per thread (``threading.local``). The tea stack keeps its
HTTP sessions in a process-wide dict keyed by endpoint (``DaraCore._sessions``); requests'
connection pools are thread-safe, the client objects carry per-call state we do not want
to share, so each thread gets its own cheap client around the shared credentials.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Generic, TypeVar

from acr_gc.cloud import calls
from acr_gc.cloud.credentials import ResolvedCredentials, resolve
from acr_gc.cloud.errors import CloudError, NotFound, classify_code, to_cloud_error, Classified, register_secret
from acr_gc.config import Api, Target
from acr_gc.gc.driver import GcStatus

SERVICE = "ACR"
API_VERSION = "2018-12-01"
MAX_PAGE_SIZE = 100  # ListRepoTag / ListRepository / ListNamespace …: "a maximum of 100 entries per page"

T = TypeVar("T")


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    page_no: int
    page_size: int
    total_count: int


@dataclass(frozen=True)
class Instance:
    instance_id: str
    name: str
    region: str | None
    status: str | None
    specification: str | None
    created: datetime | None


@dataclass(frozen=True)
class Namespace:
    namespace_id: str | None
    name: str
    status: str | None


@dataclass(frozen=True)
class Repository:
    repo_id: str
    namespace: str
    name: str
    repo_type: str | None
    status: str | None
    created: datetime | None
    modified: datetime | None

    @property
    def full_name(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class RepoTag:
    tag: str
    digest: str
    image_id: str | None
    image_size: int
    updated: datetime  # aware, UTC
    created: datetime | None
    status: str | None


@dataclass(frozen=True)
class LifecycleRule:
    rule_id: str
    scope: str  # INSTANCE | NAMESPACE | REPO
    namespace: str | None
    repo: str | None
    retention_tag_count: int | None
    tag_regexp: str | None
    enable_delete_tag: bool
    auto: bool | None = None
    schedule_time: str | None = None
    dry_run: bool = False
    policies: tuple[dict, ...] = ()  # the API's Policies[] (Type, Condition, Filter), as answered
    next_time: datetime | None = None
    enable_delete_untagged_manifest: bool = False


@dataclass(frozen=True)
class BuildRule:
    build_rule_id: str | None
    push_type: str | None
    push_name: str | None
    image_tag: str | None


@dataclass(frozen=True)
class SourceCodeRepo:
    repo_id: str | None
    code_repo_type: str | None
    code_repo_namespace: str | None
    code_repo_name: str | None
    code_repo_domain: str | None
    auto_build: bool | None


@dataclass(frozen=True)
class SyncRule:
    sync_rule_id: str | None
    name: str | None
    local_instance_id: str | None
    local_namespace: str | None
    local_repo: str | None
    target_instance_id: str | None
    target_region: str | None
    target_namespace: str | None
    target_repo: str | None
    sync_scope: str | None
    tag_filter: str | None


@dataclass(frozen=True)
class ChartNamespace:
    namespace_id: str | None
    name: str
    status: str | None


@dataclass(frozen=True)
class ChartRepository:
    repo_id: str | None
    namespace: str
    name: str
    status: str | None


@dataclass(frozen=True)
class InstanceUsage:
    namespace_usage: int | None
    namespace_quota: int | None
    repo_usage: int | None
    repo_quota: int | None
    chart_namespace_usage: int | None
    chart_namespace_quota: int | None
    chart_repo_usage: int | None
    chart_repo_quota: int | None


# --------------------------------------------------------------------------- parsing helpers


def parse_time(value: Any) -> datetime | None:
    """ACR times: epoch milliseconds (int or digit string), or ISO-8601; → aware UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)) or (isinstance(value, str) and value.strip().lstrip("-").isdigit()):
        number = float(value)
        if abs(number) < 1e11:  # seconds, not milliseconds
            number *= 1000
        return datetime.fromtimestamp(number / 1000.0, tz=timezone.utc)
    text = str(value).strip().replace("Z", "+00:00")
    parsed = datetime.fromisoformat(text)
    return parsed.replace(tzinfo=timezone.utc) if parsed.tzinfo is None else parsed.astimezone(timezone.utc)


def _int(value: Any, default: int | None = 0) -> int | None:
    if value is None or value == "":
        return default
    return int(value)


def _bool(value: Any) -> bool | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value)


def _str(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def normalize_digest(value: Any) -> str:
    """ACR answers a bare hex digest; the rest of acr-gc (datasets, CSVs) writes ``sha256:<hex>``."""
    text = str(value or "")
    if text and ":" not in text and len(text) == 64 and all(c in "0123456789abcdef" for c in text.lower()):
        return f"sha256:{text}"
    return text


def pages_needed(total: int, page_size: int) -> int:
    """How many requests a full listing of ``total`` items takes (at least one)."""
    return max(1, -(-total // page_size))


# --------------------------------------------------------------------------- the client


class AcrClient:
    """Typed ACR EE calls for one instance (``target.instance_id``)."""

    def __init__(
        self,
        target: Target,
        api: Api | None = None,
        *,
        credentials: ResolvedCredentials | None = None,
        page_size: int = MAX_PAGE_SIZE,
        backoff: calls.Backoff = calls.DEFAULT_BACKOFF,
    ) -> None:
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be within 1..{MAX_PAGE_SIZE}")
        self.target = target
        self.api = api or Api()
        self.instance_id = target.instance_id
        self.page_size = page_size
        self.backoff = backoff
        self._credentials = credentials or resolve(target)
        scheme, host = calls.split_endpoint(target.resolved_acr_endpoint)
        self.endpoint = host
        self.protocol = calls.protocol_for(scheme, host)
        self._local = threading.local()

    def __repr__(self) -> str:
        return (f"AcrClient(instance_id={self.instance_id!r}, endpoint={self.endpoint!r}, "
                f"protocol={self.protocol!r}, credentials={self._credentials.source!r})")

    # -- plumbing

    def _sdk(self):
        client = getattr(self._local, "client", None)
        if client is None:
            from alibabacloud_cr20181201.client import Client
            from alibabacloud_tea_openapi.utils_models import Config

            connect_ms, read_ms = calls.runtime_timeouts_ms(self.api)
            config = Config(
                credential=self._credentials.credential,
                endpoint=self.endpoint,
                protocol=self.protocol,
                region_id=self.target.region,
                connect_timeout=connect_ms,
                read_timeout=read_ms,
            )
            client = Client(config)
            self._local.client = client
        return client

    def _runtime(self):
        from darabonba.runtime import RuntimeOptions

        connect_ms, read_ms = calls.runtime_timeouts_ms(self.api)
        return RuntimeOptions(
            connect_timeout=connect_ms,
            read_timeout=read_ms,
            max_idle_conns=calls.pool_size(self.api),
            autoretry=False,
        )

    def _call(self, action: str, resource: str, fn: Callable[[], Any], *, idempotent: bool = True) -> dict:
        """One SDK call; returns the response body as a dict of wire keys."""

        def run() -> dict:
            response = fn()
            body = _body_map(response)
            if body.get("IsSuccess") is False or (
                isinstance(body.get("IsSuccess"), str) and body["IsSuccess"].lower() == "false"
            ):
                code = str(body.get("Code") or "Unknown")
                c = Classified(code, 200, str(body.get("Message") or ""), _str(body.get("RequestId")),
                               classify_code(code, 200))
                raise to_cloud_error(c, SERVICE, action, resource)
            return body

        return calls.call(SERVICE, action, resource, run, api=self.api, idempotent=idempotent,
                          backoff=self.backoff)

    def _res(self, *parts: str | None) -> str:
        return "/".join([self.instance_id, *[p for p in parts if p]])

    def _iter_pages(
        self,
        action: str,
        resource: str,
        fetch: Callable[[int, int], Any],
        list_key: str,
        parse: Callable[[dict], T],
        page_size: int | None,
        parallel: int = 1,
    ) -> Iterator[Page[T]]:
        """The pages of one listing, in order. With ``parallel`` > 1 the pages after the first
        (whose TotalCount says how many there are) are requested that many at a time: the
        same requests as one by one, through the same rate limiter, but a listing of N pages
        costs about two round trips instead of N. The pages are still yielded in order and
        the listing ends where the sequential one would; only when the set shrank meanwhile
        are pages past its new end requested in vain (callers check TotalCount anyway:
        ``tasks.inventory.complete_listing``)."""
        size = self.page_size if page_size is None else page_size
        if not 1 <= size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be within 1..{MAX_PAGE_SIZE}")

        def one(page_no: int) -> tuple[list[T], int | None]:
            body = self._call(action, resource, lambda: fetch(page_no, size))
            return [parse(item) for item in body.get(list_key) or []], _int(body.get("TotalCount"), default=None)

        page_no, read = 1, 0
        ahead: dict[int, Future] = {}
        pool = ThreadPoolExecutor(max_workers=parallel, thread_name_prefix=f"{action}-pages") if parallel > 1 else None
        try:
            while True:
                future = ahead.pop(page_no, None)
                items, total = future.result() if future is not None else one(page_no)
                read += len(items)
                if total is None:  # no TotalCount: a short page is the last one
                    total = read if len(items) < size else read + 1
                yield Page(items, page_no, size, total)
                if read >= total or not items:
                    return
                page_no += 1
                if pool is not None and not ahead:
                    ahead = {n: pool.submit(one, n) for n in range(page_no, pages_needed(total, size) + 1)}
        finally:
            if pool is not None:
                for future in ahead.values():
                    future.cancel()
                pool.shutdown(wait=True)

    # -- instance

    def get_instance(self) -> Instance:
        from alibabacloud_cr20181201 import models as m

        body = self._call("GetInstance", self.instance_id, lambda: self._sdk().get_instance_with_options(
            m.GetInstanceRequest(instance_id=self.instance_id), self._runtime()))
        return _instance(body, default_region=self.target.region)

    def get_authorization_token(self, expires_in_hours: int = 1) -> tuple[str, str, int]:
        """Temporary registry credentials: (user name, password, expiry in epoch ms).

        The password is registered as a secret, so it never reaches a log or an error."""
        from alibabacloud_cr20181201 import models as m

        body = self._call("GetAuthorizationToken", self.instance_id,
                          lambda: self._sdk().get_authorization_token_with_options(
                              m.GetAuthorizationTokenRequest(instance_id=self.instance_id,
                                                             expires_in_hours=expires_in_hours), self._runtime()))
        password = str(body.get("AuthorizationToken") or "")
        register_secret(password)
        return str(body.get("TempUsername") or ""), password, _int(body.get("ExpireTime"), default=0) or 0

    def iter_instance_pages(self, page_size: int | None = None) -> Iterator[Page[Instance]]:
        from alibabacloud_cr20181201 import models as m

        def fetch(page_no: int, size: int):
            return self._sdk().list_instance_with_options(
                m.ListInstanceRequest(page_no=page_no, page_size=size), self._runtime())

        return self._iter_pages("ListInstance", self.target.region, fetch, "Instances",
                                lambda d: _instance(d, default_region=self.target.region), page_size)

    def list_instances(self, page_size: int | None = None) -> list[Instance]:
        return [i for p in self.iter_instance_pages(page_size) for i in p.items]

    def get_instance_usage(self) -> InstanceUsage:
        from alibabacloud_cr20181201 import models as m

        body = self._call("GetInstanceUsage", self.instance_id, lambda: self._sdk().get_instance_usage_with_options(
            m.GetInstanceUsageRequest(instance_id=self.instance_id), self._runtime()))
        return InstanceUsage(
            namespace_usage=_int(body.get("NamespaceUsage"), None),
            namespace_quota=_int(body.get("NamespaceQuota"), None),
            repo_usage=_int(body.get("RepoUsage"), None),
            repo_quota=_int(body.get("RepoQuota"), None),
            chart_namespace_usage=_int(body.get("ChartNamespaceUsage"), None),
            chart_namespace_quota=_int(body.get("ChartNamespaceQuota"), None),
            chart_repo_usage=_int(body.get("ChartRepoUsage"), None),
            chart_repo_quota=_int(body.get("ChartRepoQuota"), None),
        )

    # -- namespaces and repositories

    def iter_namespace_pages(self, page_size: int | None = None) -> Iterator[Page[Namespace]]:
        from alibabacloud_cr20181201 import models as m

        def fetch(page_no: int, size: int):
            return self._sdk().list_namespace_with_options(
                m.ListNamespaceRequest(instance_id=self.instance_id, page_no=page_no, page_size=size),
                self._runtime())

        return self._iter_pages("ListNamespace", self.instance_id, fetch, "Namespaces", _namespace, page_size)

    def list_namespaces(self, page_size: int | None = None) -> list[Namespace]:
        return [n for p in self.iter_namespace_pages(page_size) for n in p.items]

    def iter_repository_pages(
        self, namespace: str | None = None, page_size: int | None = None, parallel: int = 1
    ) -> Iterator[Page[Repository]]:
        from alibabacloud_cr20181201 import models as m

        def fetch(page_no: int, size: int):
            return self._sdk().list_repository_with_options(
                m.ListRepositoryRequest(instance_id=self.instance_id, repo_namespace_name=namespace,
                                        page_no=page_no, page_size=size),
                self._runtime())

        return self._iter_pages("ListRepository", self._res(namespace), fetch, "Repositories",
                                _repository, page_size, parallel)

    def list_repositories(self, namespace: str | None = None, page_size: int | None = None) -> list[Repository]:
        return [r for p in self.iter_repository_pages(namespace, page_size) for r in p.items]

    # -- tags

    def iter_repo_tag_pages(
        self, repo_id: str, page_size: int | None = None, *, resource: str | None = None
    ) -> Iterator[Page[RepoTag]]:
        """Tag pages of one repository; ``resource`` (e.g. ``ns/repo``) names it in errors."""
        from alibabacloud_cr20181201 import models as m

        def fetch(page_no: int, size: int):
            return self._sdk().list_repo_tag_with_options(
                m.ListRepoTagRequest(instance_id=self.instance_id, repo_id=repo_id, page_no=page_no,
                                     page_size=size),
                self._runtime())

        return self._iter_pages("ListRepoTag", self._res(resource or repo_id), fetch, "Images", _tag, page_size)

    def list_repo_tags(self, repo_id: str, page_size: int | None = None, *,
                       resource: str | None = None) -> list[RepoTag]:
        return [t for p in self.iter_repo_tag_pages(repo_id, page_size, resource=resource) for t in p.items]

    def get_repo_tag(self, repo_id: str, tag: str, *, resource: str | None = None) -> RepoTag:
        from alibabacloud_cr20181201 import models as m

        body = self._call("GetRepoTag", self._res(resource or repo_id) + f":{tag}",
                          lambda: self._sdk().get_repo_tag_with_options(
                              m.GetRepoTagRequest(instance_id=self.instance_id, repo_id=repo_id, tag=tag),
                              self._runtime()))
        return _tag(body)

    def delete_repo_tag(self, repo_id: str, tag: str, *, resource: str | None = None) -> bool:
        """Delete one tag: True when deleted now, False when it was already gone.

        A retry after an ambiguous failure (reset after sending) can find the tag already
        deleted by the first attempt; that is success, reported as False.
        """
        from alibabacloud_cr20181201 import models as m

        try:
            self._call("DeleteRepoTag", self._res(resource or repo_id) + f":{tag}",
                       lambda: self._sdk().delete_repo_tag_with_options(
                           m.DeleteRepoTagRequest(instance_id=self.instance_id, repo_id=repo_id, tag=tag),
                           self._runtime()))
        except NotFound:
            return False
        return True

    # -- lifecycle rules

    def iter_lifecycle_rule_pages(self, page_size: int | None = None) -> Iterator[Page[LifecycleRule]]:
        from alibabacloud_cr20181201 import models as m

        def fetch(page_no: int, size: int):
            return self._sdk().list_artifact_lifecycle_rule_with_options(
                m.ListArtifactLifecycleRuleRequest(instance_id=self.instance_id, page_no=page_no, page_size=size),
                self._runtime())

        return self._iter_pages("ListArtifactLifecycleRule", self.instance_id, fetch, "Rules", _lifecycle, page_size)

    def list_lifecycle_rules(self, page_size: int | None = None) -> list[LifecycleRule]:
        return [r for p in self.iter_lifecycle_rule_pages(page_size) for r in p.items]

    def get_lifecycle_rule(self, rule_id: str) -> LifecycleRule:
        from alibabacloud_cr20181201 import models as m

        body = self._call("GetArtifactLifecycleRule", self._res(rule_id),
                          lambda: self._sdk().get_artifact_lifecycle_rule_with_options(
                              m.GetArtifactLifecycleRuleRequest(instance_id=self.instance_id, rule_id=rule_id),
                              self._runtime()))
        return _lifecycle(body)

    # -- regenerability sources

    def list_build_rules(self, repo_id: str, page_size: int | None = None, *,
                         resource: str | None = None) -> list[BuildRule]:
        from alibabacloud_cr20181201 import models as m

        def fetch(page_no: int, size: int):
            return self._sdk().list_repo_build_rule_with_options(
                m.ListRepoBuildRuleRequest(instance_id=self.instance_id, repo_id=repo_id, page_no=page_no,
                                           page_size=size),
                self._runtime())

        pages = self._iter_pages("ListRepoBuildRule", self._res(resource or repo_id), fetch, "BuildRules",
                                 _build_rule, page_size)
        return [r for p in pages for r in p.items]

    def get_source_code_repo(self, repo_id: str, *, resource: str | None = None) -> SourceCodeRepo | None:
        """The repository's source-code binding, or None when it has none."""
        from alibabacloud_cr20181201 import models as m

        try:
            body = self._call("GetRepoSourceCodeRepo", self._res(resource or repo_id),
                              lambda: self._sdk().get_repo_source_code_repo_with_options(
                                  m.GetRepoSourceCodeRepoRequest(instance_id=self.instance_id, repo_id=repo_id),
                                  self._runtime()))
        except NotFound as err:
            if err.code.startswith("REPO_NOT_EXIST") or err.code == "INSTANCE_NOT_EXIST":
                raise
            return None
        if not body.get("CodeRepoName") and not body.get("CodeRepoType"):
            return None
        return SourceCodeRepo(
            repo_id=_str(body.get("RepoId")),
            code_repo_type=_str(body.get("CodeRepoType")),
            code_repo_namespace=_str(body.get("CodeRepoNamespaceName")),
            code_repo_name=_str(body.get("CodeRepoName")),
            code_repo_domain=_str(body.get("CodeRepoDomain")),
            auto_build=_bool(body.get("AutoBuild")),
        )

    def list_sync_rules(self, namespace: str | None = None, repo: str | None = None,
                        page_size: int | None = None) -> list[SyncRule]:
        """Sync rules of the instance, of a namespace, or of one repository (by name)."""
        from alibabacloud_cr20181201 import models as m

        def fetch(page_no: int, size: int):
            return self._sdk().list_repo_sync_rule_with_options(
                m.ListRepoSyncRuleRequest(instance_id=self.instance_id, namespace_name=namespace, repo_name=repo,
                                          page_no=page_no, page_size=size),
                self._runtime())

        pages = self._iter_pages("ListRepoSyncRule", self._res(namespace, repo), fetch, "SyncRules",
                                 _sync_rule, page_size)
        return [r for p in pages for r in p.items]

    # -- charts (listed to be reported, never touched)

    def iter_chart_namespace_pages(self, page_size: int | None = None) -> Iterator[Page[ChartNamespace]]:
        from alibabacloud_cr20181201 import models as m

        def fetch(page_no: int, size: int):
            return self._sdk().list_chart_namespace_with_options(
                m.ListChartNamespaceRequest(instance_id=self.instance_id, page_no=page_no, page_size=size),
                self._runtime())

        return self._iter_pages("ListChartNamespace", self.instance_id, fetch, "Namespaces", _chart_namespace,
                                page_size)

    def list_chart_namespaces(self, page_size: int | None = None) -> list[ChartNamespace]:
        return [n for p in self.iter_chart_namespace_pages(page_size) for n in p.items]

    def iter_chart_repository_pages(
        self, namespace: str | None = None, page_size: int | None = None
    ) -> Iterator[Page[ChartRepository]]:
        from alibabacloud_cr20181201 import models as m

        def fetch(page_no: int, size: int):
            return self._sdk().list_chart_repository_with_options(
                m.ListChartRepositoryRequest(instance_id=self.instance_id, repo_namespace_name=namespace,
                                             page_no=page_no, page_size=size),
                self._runtime())

        return self._iter_pages("ListChartRepository", self._res(namespace), fetch, "Repositories",
                                _chart_repository, page_size)

    def list_chart_repositories(self, namespace: str | None = None,
                                page_size: int | None = None) -> list[ChartRepository]:
        return [r for p in self.iter_chart_repository_pages(namespace, page_size) for r in p.items]

    # -- the emulator's GC actions (not part of the public API)

    def _gc_params(self, action: str):
        from alibabacloud_tea_openapi.utils_models import Params

        return Params(action=action, version=API_VERSION, protocol=self.protocol, pathname="/",
                      method="POST", auth_type="AK", style="RPC", req_body_type="formData",
                      body_type="json")

    def _gc_call(self, action: str, query: dict[str, str], *, idempotent: bool = True) -> dict:
        from alibabacloud_tea_openapi.utils_models import OpenApiRequest

        params = self._gc_params(action)
        resource = self._res(query.get("TaskId"))

        def fn():
            return self._sdk().call_api(params, OpenApiRequest(query=dict(query)), self._runtime())

        return self._call(action, resource, fn, idempotent=idempotent)

    def gc_enablement(self) -> bool:
        body = self._gc_call("GetGarbageCollectionEnablement", {"InstanceId": self.instance_id})
        return bool(_bool(body.get("Enabled")))

    def gc_create(self, client_token: str | None = None) -> str:
        """Start a GC task; returns its id. Not retried after an ambiguous failure (it could
        have started a task): the caller should look for an active task (``gc_list``), and
        ask again with the same ``client_token``, which answers the task the first create
        started should the look have missed it."""
        query = {"InstanceId": self.instance_id, **({"ClientToken": client_token} if client_token else {})}
        body = self._gc_call("CreateGarbageCollectionTask", query, idempotent=False)
        task_id = body.get("TaskId")
        if not task_id:
            raise CloudError(SERVICE, "CreateGarbageCollectionTask", self.instance_id, "BadResponse", 200,
                             "the response carries no TaskId")
        return str(task_id)

    def gc_get(self, task_id: str) -> GcStatus:
        body = self._gc_call("GetGarbageCollectionTask", {"InstanceId": self.instance_id, "TaskId": task_id})
        return _gc_status(body.get("Task") if isinstance(body.get("Task"), dict) else body)

    def gc_list(self, page_size: int | None = None) -> list[GcStatus]:
        """Every GC task of the instance (all pages), as the emulator lists them."""
        from alibabacloud_tea_openapi.utils_models import OpenApiRequest

        params = self._gc_params("ListGarbageCollectionTask")

        def fetch(page_no: int, size: int):
            query = {"InstanceId": self.instance_id, "PageNo": str(page_no), "PageSize": str(size)}
            return self._sdk().call_api(params, OpenApiRequest(query=query), self._runtime())

        pages = self._iter_pages("ListGarbageCollectionTask", self.instance_id, fetch, "Tasks", _gc_status, page_size)
        return [t for p in pages for t in p.items]

    def gc_cancel(self, task_id: str) -> GcStatus | None:
        body = self._gc_call("CancelGarbageCollectionTask", {"InstanceId": self.instance_id, "TaskId": task_id})
        if body.get("TaskId") or isinstance(body.get("Task"), dict):
            return _gc_status(body.get("Task") if isinstance(body.get("Task"), dict) else body)
        return None


# --------------------------------------------------------------------------- wire → typed


def _body_map(response: Any) -> dict:
    """The response body as wire keys, from a typed SDK response or a call_api dict."""
    if isinstance(response, dict):
        body = response.get("body")
        return body if isinstance(body, dict) else {}
    body = getattr(response, "body", None)
    if body is not None and hasattr(body, "to_map"):
        return body.to_map() or {}
    raw = getattr(response, "_map", None)  # DaraCore.from_map could not type it
    if isinstance(raw, dict) and isinstance(raw.get("body"), dict):
        return raw["body"]
    return {}


def _instance(d: dict, default_region: str | None = None) -> Instance:
    return Instance(
        instance_id=str(d.get("InstanceId") or ""),
        name=str(d.get("InstanceName") or ""),
        region=_str(d.get("RegionId")) or default_region,
        status=_str(d.get("InstanceStatus")),
        specification=_str(d.get("InstanceSpecification")),
        created=parse_time(d.get("CreateTime")),
    )


def _namespace(d: dict) -> Namespace:
    return Namespace(_str(d.get("NamespaceId")), str(d.get("NamespaceName") or ""), _str(d.get("NamespaceStatus")))


def _repository(d: dict) -> Repository:
    return Repository(
        repo_id=str(d.get("RepoId") or ""),
        namespace=str(d.get("RepoNamespaceName") or ""),
        name=str(d.get("RepoName") or ""),
        repo_type=_str(d.get("RepoType")),
        status=_str(d.get("RepoStatus")),
        created=parse_time(d.get("CreateTime")),
        modified=parse_time(d.get("ModifiedTime")),
    )


def _tag(d: dict) -> RepoTag:
    updated = parse_time(d.get("ImageUpdate")) or parse_time(d.get("ImageCreate"))
    if updated is None:
        raise ValueError(f"tag {d.get('Tag')!r} has no ImageUpdate time")
    return RepoTag(
        tag=str(d.get("Tag") or ""),
        digest=normalize_digest(d.get("Digest")),
        image_id=_str(d.get("ImageId")),
        image_size=_int(d.get("ImageSize")) or 0,
        updated=updated,
        created=parse_time(d.get("ImageCreate")),
        status=_str(d.get("Status")),
    )


def _lifecycle(d: dict) -> LifecycleRule:
    count = _int(d.get("RetentionTagCount"), None)
    return LifecycleRule(
        rule_id=str(d.get("RuleId") or ""),
        scope=str(d.get("Scope") or "").upper(),
        namespace=_str(d.get("NamespaceName")),
        repo=_str(d.get("RepoName")),
        retention_tag_count=count,
        tag_regexp=_str(d.get("TagRegexp")),
        enable_delete_tag=bool(_bool(d.get("EnableDeleteTag"))),
        auto=_bool(d.get("Auto")),
        schedule_time=_str(d.get("ScheduleTime")),
        dry_run=bool(_bool(d.get("DryRun"))),
        policies=tuple(p for p in (d.get("Policies") or []) if isinstance(p, dict)),
        next_time=parse_time(d.get("NextTime")),
        enable_delete_untagged_manifest=bool(_bool(d.get("EnableDeleteUntaggedManifest"))),
    )


def _build_rule(d: dict) -> BuildRule:
    return BuildRule(_str(d.get("BuildRuleId")), _str(d.get("PushType")), _str(d.get("PushName")),
                     _str(d.get("ImageTag")))


def _sync_rule(d: dict) -> SyncRule:
    return SyncRule(
        sync_rule_id=_str(d.get("SyncRuleId")),
        name=_str(d.get("SyncRuleName")),
        local_instance_id=_str(d.get("LocalInstanceId")),
        local_namespace=_str(d.get("LocalNamespaceName")),
        local_repo=_str(d.get("LocalRepoName")),
        target_instance_id=_str(d.get("TargetInstanceId")),
        target_region=_str(d.get("TargetRegionId")),
        target_namespace=_str(d.get("TargetNamespaceName")),
        target_repo=_str(d.get("TargetRepoName")),
        sync_scope=_str(d.get("SyncScope")),
        tag_filter=_str(d.get("TagFilter")),
    )


def _chart_namespace(d: dict) -> ChartNamespace:
    return ChartNamespace(_str(d.get("NamespaceId")), str(d.get("NamespaceName") or ""),
                          _str(d.get("NamespaceStatus")))


def _chart_repository(d: dict) -> ChartRepository:
    return ChartRepository(_str(d.get("RepoId")), str(d.get("RepoNamespaceName") or ""),
                           str(d.get("RepoName") or ""), _str(d.get("RepoStatus")))


def _gc_status(d: dict) -> GcStatus:
    return GcStatus(
        task_id=str(d.get("TaskId") or ""),
        state=str(d.get("State") or "").upper(),
        progress=_int(d.get("Progress")) or 0,
        tags_deleted=_int(d.get("TagsDeleted")) or 0,
        objects_deleted=_int(d.get("ObjectsDeleted")) or 0,
        bytes_deleted=_int(d.get("BytesDeleted")) or 0,
        created=parse_time(d.get("CreateTime")),
        finished=parse_time(d.get("FinishTime")),
        tags_planned=_int(d.get("TagsPlanned"), None),
        error=_str(d.get("ErrorMessage")),
        client_token=_str(d.get("ClientToken")),
    )
