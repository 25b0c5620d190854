"""The ACR OpenAPI (2018-12-01) wire: RPC dispatch, signature check, JSON bodies and errors.

What the tea-openapi SDK sends: ``POST /`` with the action in ``x-acs-action``, the
version in ``x-acs-version``, every parameter in the query string and an ACS3 signature
(``acr_signing``). Answers are JSON shaped as the SDK's response models
(``alibabacloud_cr20181201.models``) read them, field names and types included; errors
are ``{"RequestId", "HostId", "Code", "Message", "Recommend"}`` with the HTTP status the
SDK turns into ``ClientException`` (4xx) or ``ServerException`` (5xx).

Handlers are plain functions ``(ctx, params) -> dict`` over the backend state; no
handler touches the wire. Everything runs on the event loop thread.
"""

from __future__ import annotations

import uuid
from typing import Callable
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from acr_gc.emulator import acr_signing
from acr_gc.emulator.gc import GcRefused, GcService
from acr_gc.emulator.registry import InstanceRecord, NotFound, PolicyDenied, RepoRecord

try:  # orjson ships with prefect; fall back to the standard library
    import orjson

    def _dumps(body: dict) -> bytes:
        return orjson.dumps(body)
except ImportError:  # pragma: no cover
    import json

    def _dumps(body: dict) -> bytes:
        return json.dumps(body, separators=(",", ":")).encode()


VERSION = "2018-12-01"
HOST_ID = "cr.aliyuncs.com"
DEFAULT_PAGE_SIZE = 30
MAX_PAGE_SIZE = 100


class AcrError(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def request_id() -> str:
    return str(uuid.uuid4()).upper()


def error_response(status: int, code: str, message: str) -> Response:
    """An error in the real POP shape (also used by the fault middleware on this port)."""
    body = {
        "RequestId": request_id(),
        "HostId": HOST_ID,
        "Code": code,
        "Message": message,
        "Recommend": f"https://api.aliyun.com/troubleshoot?q={code}&product=cr",
    }
    return Response(_dumps(body), status_code=status, media_type="application/json;charset=utf-8")


def _ok(body: dict) -> Response:
    body["RequestId"] = request_id()
    body["Code"] = "success"
    body["IsSuccess"] = True
    return Response(_dumps(body), status_code=200, media_type="application/json;charset=utf-8")


# The public actions whose response models (alibabacloud_cr20181201.models) carry
# IsSuccess and Code: the ones ACR EE may answer with a business error inside an HTTP 200.
# The GC actions are the emulator's own (no public model) and answer errors by status only.
BUSINESS_ERROR_ACTIONS = frozenset({
    "GetInstance", "ListInstance", "GetInstanceUsage", "ListNamespace", "ListRepository", "ListRepoTag",
    "GetRepoTag", "DeleteRepoTag", "ListArtifactLifecycleRule", "GetArtifactLifecycleRule", "ListRepoBuildRule",
    "GetRepoSourceCodeRepo", "ListRepoSyncRule", "ListChartNamespace", "ListChartRepository",
})
BUSINESS_ERROR_MESSAGES = {
    "SystemError": "A system error occurred. Please try again later.",
    "ServiceUnavailable": "The request has failed due to a temporary failure of the server.",
}


def business_error_response(code: str) -> Response:
    """HTTP 200 with ``IsSuccess: false``: ACR EE's way of failing inside a successful exchange."""
    message = BUSINESS_ERROR_MESSAGES.get(code, "Request was denied due to user flow control."
                                          if code.startswith("Throttling") else f"The request failed: {code}.")
    body = {"RequestId": request_id(), "Code": code, "Message": message, "IsSuccess": False}
    return Response(_dumps(body), status_code=200, media_type="application/json;charset=utf-8")


# ---- parameters ---------------------------------------------------------------------


def required(params: dict, name: str) -> str:
    value = params.get(name)
    if value is None or value == "":
        raise AcrError(
            400,
            "MissingParameter",
            f'The input parameter "{name}" that is mandatory for processing this request is not supplied.',
        )
    return value


def _int_param(params: dict, name: str, default: int, low: int, high: int | None) -> int:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = None
    if value is None or value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise AcrError(400, "PARAM_INVALID", f"The parameter {name} is invalid: it must be an integer {bound}.")
    return value


def paging(params: dict) -> tuple[int, int]:
    """(PageNo, PageSize): PageNo from 1, PageSize 1..100, default 30."""
    return (
        _int_param(params, "PageNo", 1, 1, None),
        _int_param(params, "PageSize", DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE),
    )


def page_of(items, params: dict) -> tuple[list, dict]:
    page_no, page_size = paging(params)
    start = (page_no - 1) * page_size
    return items[start : start + page_size], {"PageNo": page_no, "PageSize": page_size}


def _bool_param(params: dict, name: str) -> bool | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    if raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    raise AcrError(400, "PARAM_INVALID", f"The parameter {name} is invalid: it must be true or false.")


# ---- actions --------------------------------------------------------------------------

ACTIONS: dict[str, Callable] = {}


def action(fn: Callable) -> Callable:
    ACTIONS[fn.__name__] = fn
    return fn


class Ctx:
    def __init__(self, state, gc: GcService):
        self.state = state
        self.gc = gc

    def instance(self, params: dict) -> InstanceRecord:
        return self.state.registry.instance(required(params, "InstanceId"))

    def repo(self, params: dict) -> tuple[InstanceRecord, RepoRecord]:
        inst = self.instance(params)
        return inst, inst.repo(required(params, "RepoId"))


def _instance_body(inst: InstanceRecord, times_as_str: bool) -> dict:
    created = str(inst.created_ms) if times_as_str else inst.created_ms
    return {
        "InstanceId": inst.instance_id,
        "InstanceName": inst.name,
        "InstanceSpecification": "Enterprise_Advanced",
        "InstanceStatus": "RUNNING",
        "InstanceIssue": "",
        "CreateTime": created,
        "ModifiedTime": created,
        "ResourceGroupId": "rg-acfmemulator",
        "Tags": [],
    }


@action
def GetInstance(ctx: Ctx, params: dict) -> dict:
    return _instance_body(ctx.instance(params), times_as_str=False)


@action
def ListInstance(ctx: Ctx, params: dict) -> dict:
    items = sorted(ctx.state.registry.instances.values(), key=lambda i: i.instance_id)
    if params.get("InstanceName"):
        items = [i for i in items if i.name == params["InstanceName"]]
    if params.get("InstanceStatus") and params["InstanceStatus"] != "RUNNING":
        items = []
    page, meta = page_of(items, params)
    body = [dict(_instance_body(i, times_as_str=True), RegionId=i.region) for i in page]
    return {"Instances": body, "TotalCount": len(items), **meta}


@action
def GetInstanceUsage(ctx: Ctx, params: dict) -> dict:
    inst = ctx.instance(params)
    return {
        "NamespaceQuota": "15",
        "NamespaceUsage": str(len(inst.namespaces)),
        "RepoQuota": "5000",
        "RepoUsage": str(len(inst.repos)),
        "ChartNamespaceQuota": "15",
        "ChartNamespaceUsage": str(len(inst.chart_namespaces)),
        "ChartRepoQuota": "5000",
        "ChartRepoUsage": str(len(inst.charts)),
        "VpcQuota": "7",
        "VpcUsage": "0",
        "PerformanceUnits": 0,
    }


@action
def ListNamespace(ctx: Ctx, params: dict) -> dict:
    inst = ctx.instance(params)
    names = list(inst.namespaces)
    if params.get("NamespaceName"):
        names = [n for n in names if n == params["NamespaceName"]]
    if params.get("NamespaceStatus") not in (None, "", "ALL", "NORMAL"):
        names = []
    page, meta = page_of(names, params)
    body = [_namespace_record(inst, n, inst.namespace_ids[n]) for n in page]
    return {"Namespaces": body, "TotalCount": str(len(names)), **meta}


def _namespace_record(inst, name: str, namespace_id: str) -> dict:
    """A namespace as ListNamespace and ListChartNamespace answer it."""
    return {
        "NamespaceId": namespace_id,
        "NamespaceName": name,
        "NamespaceStatus": "NORMAL",
        "InstanceId": inst.instance_id,
        "AutoCreateRepo": True,
        "DefaultRepoType": "PRIVATE",
        "ResourceGroupId": "rg-acfmemulator",
    }


@action
def ListRepository(ctx: Ctx, params: dict) -> dict:
    inst = ctx.instance(params)
    repos = inst.repos
    if params.get("RepoNamespaceName"):
        repos = [r for r in repos if r.namespace == params["RepoNamespaceName"]]
    if params.get("RepoName"):
        repos = [r for r in repos if r.name == params["RepoName"]]
    if params.get("RepoStatus") not in (None, "", "ALL", "NORMAL"):
        repos = []
    page, meta = page_of(repos, params)
    body = [
        {
            "RepoId": r.repo_id,
            "RepoName": r.name,
            "RepoNamespaceName": r.namespace,
            "RepoType": "PRIVATE",
            "RepoStatus": "NORMAL",
            "RepoBuildType": "AUTOMATIC" if r.source_code is not None else "MANUAL",
            "InstanceId": inst.instance_id,
            "CreateTime": r.created_ms,
            "ModifiedTime": r.modified_ms,
            "Summary": "",
            "TagImmutability": False,
            "ResourceGroupId": "rg-acfmemulator",
        }
        for r in page
    ]
    return {"Repositories": body, "TotalCount": str(len(repos)), **meta}


def _image(record, times_as_str: bool) -> dict:
    stamp = str(record.updated_ms) if times_as_str else record.updated_ms
    return {
        "Tag": record.tag,
        "Digest": record.digest.partition(":")[2] or record.digest,
        "ImageId": record.image_id,
        "ImageSize": record.size,
        "ImageCreate": stamp,
        "ImageUpdate": stamp,
        "Status": "NORMAL",
    }


@action
def ListRepoTag(ctx: Ctx, params: dict) -> dict:
    _, repo = ctx.repo(params)
    ordered = repo.ordered()
    page, meta = page_of(ordered, params)
    return {"Images": [_image(t, times_as_str=True) for t in page], "TotalCount": str(len(ordered)), **meta}


@action
def GetRepoTag(ctx: Ctx, params: dict) -> dict:
    _, repo = ctx.repo(params)
    tag = required(params, "Tag")
    record = repo.tags.get(tag)
    if record is None:
        raise NotFound("TAG_NOT_EXIST", f"The tag {repo.full_name}:{tag} does not exist.")
    return _image(record, times_as_str=False)


@action
def DeleteRepoTag(ctx: Ctx, params: dict) -> dict:
    inst, repo = ctx.repo(params)
    try:
        ctx.state.registry.delete_tag(inst, repo, required(params, "Tag"), ctx.state.now())
    except PolicyDenied as exc:  # the registry's role is refused by the bucket policy
        raise AcrError(403, "OSS_ACCESS_DENIED", str(exc)) from None
    return {}


def _rule_body(inst: InstanceRecord, rule) -> dict:
    body = {
        "RuleId": rule.rule_id,
        "InstanceId": inst.instance_id,
        "Scope": rule.scope,
        "EnableDeleteTag": rule.enable_delete_tag,
        "EnableDeleteUntaggedManifest": rule.enable_delete_untagged_manifest,
        "Auto": rule.auto,
        "DryRun": rule.dry_run,
        "ScheduleTime": rule.schedule_time,
        "CreateTime": rule.created_ms,
        "ModifiedTime": rule.created_ms,
        "Policies": [dict(policy) for policy in rule.policies],
    }
    if rule.next_time_ms is not None:
        body["NextTime"] = rule.next_time_ms
    if rule.namespace is not None:
        body["NamespaceName"] = rule.namespace
    if rule.repo is not None:
        body["RepoName"] = rule.repo
    if rule.retention_tag_count is not None:
        body["RetentionTagCount"] = rule.retention_tag_count
    if rule.tag_regexp is not None:
        body["TagRegexp"] = rule.tag_regexp
    return body


@action
def ListArtifactLifecycleRule(ctx: Ctx, params: dict) -> dict:
    inst = ctx.instance(params)
    rules = inst.lifecycle_rules
    wanted = _bool_param(params, "EnableDeleteTag")
    if wanted is not None:
        rules = [r for r in rules if r.enable_delete_tag == wanted]
    page, meta = page_of(rules, params)
    return {"Rules": [_rule_body(inst, r) for r in page], "TotalCount": len(rules), **meta}


@action
def GetArtifactLifecycleRule(ctx: Ctx, params: dict) -> dict:
    inst = ctx.instance(params)
    rule_id = required(params, "RuleId")
    for rule in inst.lifecycle_rules:
        if rule.rule_id == rule_id:
            return _rule_body(inst, rule)
    raise NotFound("ARTIFACT_LIFECYCLE_RULE_NOT_EXIST", f"The lifecycle rule {rule_id} does not exist.")


@action
def ListRepoBuildRule(ctx: Ctx, params: dict) -> dict:
    inst, repo = ctx.repo(params)
    rules = list(enumerate(repo.build_rules))
    page, meta = page_of(rules, params)
    body = [
        {
            "BuildRuleId": f"crbr-{repo.repo_id[4:]}{i:04d}",
            "PushType": r.push_type,
            "PushName": r.push_name,
            "ImageTag": r.image_tag,
            "DockerfileLocation": "/",
            "DockerfileName": "Dockerfile",
            "Platforms": ["linux/amd64"],
            "BuildArgs": [],
        }
        for i, r in page
    ]
    return {"BuildRules": body, "TotalCount": str(len(rules)), **meta}


_CODE_DOMAINS = {"GITHUB": "https://github.com", "GITLAB": "https://gitlab.com", "GITEE": "https://gitee.com"}


@action
def GetRepoSourceCodeRepo(ctx: Ctx, params: dict) -> dict:
    """A repository without a source binding answers success with no CodeRepo* fields."""
    _, repo = ctx.repo(params)
    body = {"RepoId": repo.repo_id}
    src = repo.source_code
    if src is not None:
        body.update(
            {
                "CodeRepoType": src.type,
                "CodeRepoNamespaceName": src.namespace,
                "CodeRepoName": src.name,
                "CodeRepoDomain": _CODE_DOMAINS.get(src.type.upper(), ""),
                "AutoBuild": "true",
                "DisableCacheBuild": "false",
                "OverseaBuild": "false",
            }
        )
    return body


@action
def ListRepoSyncRule(ctx: Ctx, params: dict) -> dict:
    inst = ctx.instance(params)
    instances = ctx.state.registry.instances
    rows = []
    for repo in inst.repos:
        if params.get("NamespaceName") and repo.namespace != params["NamespaceName"]:
            continue
        if params.get("RepoName") and repo.name != params["RepoName"]:
            continue
        for i, rule in enumerate(repo.sync_rules):
            target = instances.get(rule.target_instance_id)
            target_region = target.region if target is not None else inst.region
            if params.get("TargetInstanceId") and rule.target_instance_id != params["TargetInstanceId"]:
                continue
            if params.get("TargetRegionId") and target_region != params["TargetRegionId"]:
                continue
            rows.append(
                {
                    "SyncRuleId": f"crsr-{repo.repo_id[4:]}{i:04d}",
                    "SyncRuleName": f"sync-{repo.namespace}-{repo.name}-{i}",
                    "LocalInstanceId": inst.instance_id,
                    "LocalRegionId": inst.region,
                    "LocalNamespaceName": repo.namespace,
                    "LocalRepoName": repo.name,
                    "TargetInstanceId": rule.target_instance_id,
                    "TargetRegionId": target_region,
                    "TargetNamespaceName": rule.target_namespace,
                    "TargetRepoName": rule.target_repo,
                    "SyncScope": "REPO",
                    "SyncTrigger": "PASSIVE",
                    "SyncDirection": "FROM",
                    "TagFilter": ".*",
                    "CrossUser": False,
                    "CreateTime": repo.created_ms,
                    "ModifiedTime": repo.created_ms,
                }
            )
    page, meta = page_of(rows, params)
    return {"SyncRules": page, "TotalCount": len(rows), **meta}


@action
def ListChartNamespace(ctx: Ctx, params: dict) -> dict:
    inst = ctx.instance(params)
    names = list(inst.chart_namespaces)
    if params.get("NamespaceName"):
        names = [n for n in names if n == params["NamespaceName"]]
    page, meta = page_of(names, params)
    from acr_gc.emulator.registry import stable_id

    body = [_namespace_record(inst, n, stable_id("crcn-", inst.instance_id, n)) for n in page]
    return {"Namespaces": body, "TotalCount": str(len(names)), **meta}


@action
def ListChartRepository(ctx: Ctx, params: dict) -> dict:
    inst = ctx.instance(params)
    charts = inst.charts
    if params.get("RepoNamespaceName"):
        charts = [c for c in charts if c.namespace == params["RepoNamespaceName"]]
    if params.get("RepoName"):
        charts = [c for c in charts if c.name == params["RepoName"]]
    page, meta = page_of(charts, params)
    body = [
        {
            "RepoId": c.repo_id,
            "RepoName": c.name,
            "RepoNamespaceName": c.namespace,
            "RepoType": "PRIVATE",
            "RepoStatus": "NORMAL",
            "InstanceId": inst.instance_id,
            "CreateTime": c.created_ms,
            "ModifiedTime": c.created_ms,
            "Summary": "",
            "ResourceGroupId": "rg-acfmemulator",
        }
        for c in page
    ]
    return {"Repositories": body, "TotalCount": str(len(charts)), **meta}


# ---- the emulator's own GC actions (no real OpenAPI counterpart; see docs/emulator.md) ----


@action
def GetGarbageCollectionEnablement(ctx: Ctx, params: dict) -> dict:
    inst = ctx.instance(params)
    return {"InstanceId": inst.instance_id, "Enabled": ctx.gc.is_enabled(inst.instance_id)}


@action
def CreateGarbageCollectionTask(ctx: Ctx, params: dict) -> dict:
    return ctx.gc.create(required(params, "InstanceId"), params.get("ClientToken")).to_api()


@action
def GetGarbageCollectionTask(ctx: Ctx, params: dict) -> dict:
    return ctx.gc.get(required(params, "InstanceId"), required(params, "TaskId")).to_api()


@action
def ListGarbageCollectionTask(ctx: Ctx, params: dict) -> dict:
    tasks = ctx.gc.list(required(params, "InstanceId"))
    state = params.get("State")
    if state:
        tasks = [t for t in tasks if t.state == state]
    page, meta = page_of(tasks, params)
    return {"Tasks": [t.to_api() for t in page], "TotalCount": len(tasks), **meta}


@action
def CancelGarbageCollectionTask(ctx: Ctx, params: dict) -> dict:
    return ctx.gc.cancel(required(params, "InstanceId"), required(params, "TaskId")).to_api()


# ---- the app ----------------------------------------------------------------------------


def _headers(scope) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, value in scope["headers"]:
        out.setdefault(name.decode("latin-1").lower(), []).append(value.decode("latin-1"))
    return out


def action_name(headers: dict[str, list[str]], params: dict) -> str:
    """The action a request names: the ``x-acs-action`` header (what the SDK sends) or ``Action``."""
    return (headers.get("x-acs-action") or [params.get("Action", "")])[0]


def action_of(scope: dict) -> str:
    """``action_name`` of a raw ASGI request, before its body is read (what a fault hold matches)."""
    return action_name(_headers(scope), dict(parse_qsl(scope["query_string"].decode("latin-1"))))


def create_app(state, gc: GcService) -> Starlette:
    """The signed API on ``/``; admin routes are mounted beside it by ``server``."""
    ctx = Ctx(state, gc)
    nonces = acr_signing.NonceCache()
    state.acr_nonces = nonces

    async def endpoint(request: Request) -> Response:
        scope = request.scope
        headers = _headers(scope)
        query = parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True)
        body = await request.body()
        params = dict(query)
        ctype = (headers.get("content-type") or [""])[0]
        if body and ctype.startswith("application/x-www-form-urlencoded"):
            params.update(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
        name = action_name(headers, params)
        handler = ACTIONS.get(name)
        if handler is None:
            return error_response(404, "InvalidAction.NotFound", "Specified api is not found, please check your url and method.")
        version = (headers.get("x-acs-version") or [params.get("Version", "")])[0]
        if version != VERSION:
            return error_response(400, "InvalidVersion", "Specified parameter Version is not valid.")
        try:
            acr_signing.verify(
                method=request.method,
                path=scope["path"],
                query=query,
                headers=headers,
                body=body,
                secrets={ak: c.access_key_secret for ak, c in state.credentials.items()},
                nonces=nonces,
                wall_clock=state.wall_time(),
            )
        except acr_signing.SignatureError as exc:
            return error_response(exc.status, exc.code, exc.message)
        gc.run_due_rules()  # the service's own scheduled rule runs, on the emulated clock
        if name in BUSINESS_ERROR_ACTIONS and (code := state.faults.business_error()) is not None:
            return business_error_response(code)
        try:
            return _ok(handler(ctx, params))
        except AcrError as exc:
            return error_response(exc.status, exc.code, exc.message)
        except NotFound as exc:
            return error_response(404, exc.code, exc.message)
        except GcRefused as exc:
            return error_response(exc.status, exc.code, exc.message)

    return Starlette(routes=[Route("/{path:path}", endpoint, methods=["GET", "POST"])])
