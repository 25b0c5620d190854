"""The registry's OCI distribution API (``/v2/…``) on its own port, and ``GetAuthorizationToken``.

What ACR EE does, as far as a client can see it: ``GetAuthorizationToken`` (OpenAPI) hands
out a temporary user name and password for one instance; the registry domain answers an
anonymous ``/v2/`` with ``401`` and ``WWW-Authenticate: Bearer realm=…,service=…``; the
client trades the temporary credentials (HTTP Basic) at the realm for a bearer token and
sends that with each request. Here the realm is ``/auth`` on the same port. Temporary
passwords and bearer tokens expire on the real clock (a signature-like lifetime: the
emulated clock can race through days in a demo); ``POST /_emulator/registry/expire``
expires every one at once, which is how a test makes a token expire mid-inventory.

A token belongs to the instance it was issued for: ``/v2/<namespace>/<repo>/manifests/<ref>``
is looked up in that instance. Manifests are served by digest or by tag with their media
type, ``Docker-Content-Digest`` and a body whose length is the stored manifest object's
size (``registry.manifest_body``); a manifest whose object GC has swept is unknown (404).
Requests go through the same latency / QPS / fault middleware as the other ports.
``GET /_emulator/registry`` counts what was served (manifest fetches by digest included),
so tests can tell that a cached run fetched nothing.
"""

from __future__ import annotations

import base64
import secrets
import time
from collections import Counter
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from acr_gc.emulator import acr_wire
from acr_gc.emulator.registry import blob_key

TEMP_USERNAME = "cr_temp_user"
SERVICE = "registry.acr-gc-emulator"
DEFAULT_HOURS = 1
REGISTRY_THROTTLE = (429, "TOOMANYREQUESTS", "too many requests")


@dataclass
class Grant:
    instance_id: str
    expires_at: float  # epoch seconds, real clock


@dataclass
class TokenStore:
    """Temporary passwords (from GetAuthorizationToken) and bearer tokens (from ``/auth``)."""

    passwords: dict[str, Grant] = field(default_factory=dict)
    bearers: dict[str, Grant] = field(default_factory=dict)
    counts: Counter = field(default_factory=Counter)
    manifest_fetches: Counter = field(default_factory=Counter)  # digest -> GETs served

    def issue_password(self, instance_id: str, hours: int) -> tuple[str, float]:
        password = "acr-emu-" + secrets.token_urlsafe(24)
        expires = time.time() + hours * 3600
        self.passwords[password] = Grant(instance_id, expires)
        self.counts["authorization_tokens"] += 1
        return password, expires

    def expire_all(self) -> None:
        now = time.time() - 1
        for grant in [*self.passwords.values(), *self.bearers.values()]:
            grant.expires_at = min(grant.expires_at, now)

    def stats(self) -> dict:
        return {
            "manifest_fetches": sum(self.manifest_fetches.values()),
            "manifest_fetches_by_digest": dict(self.manifest_fetches),
            **{name: int(n) for name, n in self.counts.items()},
        }


def tokens_of(state) -> TokenStore:
    """The state's token store (kept across dataset loads: tokens are not dataset content)."""
    store = getattr(state, "registry_tokens", None)
    if store is None:
        store = state.registry_tokens = TokenStore()
    return store


@acr_wire.action
def GetAuthorizationToken(ctx, params: dict) -> dict:
    """Temporary registry credentials for one instance, in the SDK's response shape."""
    inst = ctx.instance(params)
    hours = acr_wire._int_param(params, "ExpiresInHours", DEFAULT_HOURS, 1, 24)
    password, expires = tokens_of(ctx.state).issue_password(inst.instance_id, hours)
    return {"AuthorizationToken": password, "TempUsername": TEMP_USERNAME, "ExpireTime": int(expires * 1000)}


def error_response(status: int, code: str, message: str, headers: dict | None = None) -> Response:
    """An error in the distribution spec's shape."""
    return JSONResponse({"errors": [{"code": code, "message": message, "detail": None}]},
                        status_code=status, headers=headers)


def operation_of(scope: dict) -> str:
    path = scope.get("path", "")
    if path.startswith("/auth"):
        return "Token"
    if "/manifests/" in path:
        return "GetManifest"
    return "Ping"


def create_app(state) -> Starlette:
    store = tokens_of(state)

    def challenge(request: Request, error: str | None = None, text: str = "authentication required") -> Response:
        realm = f"http://{request.headers.get('host', '')}/auth"
        value = f'Bearer realm="{realm}",service="{SERVICE}"'
        if error:
            value += f',error="{error}"'
        store.counts["refused"] += 1
        return error_response(401, "UNAUTHORIZED", text, {"WWW-Authenticate": value})

    def bearer_grant(request: Request) -> Grant | None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return None
        return store.bearers.get(token.strip())

    async def auth(request: Request) -> Response:
        """The token realm: HTTP Basic with GetAuthorizationToken's credentials → a bearer token."""
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return challenge(request)
        try:
            user, _, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return challenge(request, "invalid_request", "malformed basic credentials")
        grant = store.passwords.get(password)
        if user != TEMP_USERNAME or grant is None:
            return challenge(request, "invalid_token", "unknown credentials")
        if grant.expires_at <= time.time():
            return challenge(request, "invalid_token", "the credentials have expired")
        token = secrets.token_urlsafe(32)
        store.bearers[token] = Grant(grant.instance_id, grant.expires_at)
        store.counts["bearer_tokens"] += 1
        expires_in = max(1, int(grant.expires_at - time.time()))
        return JSONResponse({"token": token, "access_token": token, "expires_in": expires_in})

    def authorized(request: Request) -> tuple[Grant | None, Response | None]:
        if not request.headers.get("authorization"):
            return None, challenge(request)
        grant = bearer_grant(request)
        if grant is None:
            return None, challenge(request, "invalid_token", "unknown token")
        if grant.expires_at <= time.time():
            return None, challenge(request, "invalid_token", "the token has expired")
        return grant, None

    async def ping(request: Request) -> Response:
        _, refused = authorized(request)
        if refused is not None:
            return refused
        return JSONResponse({}, headers={"Docker-Distribution-API-Version": "registry/2.0"})

    async def manifest(request: Request) -> Response:
        grant, refused = authorized(request)
        if refused is not None:
            return refused
        name, reference = request.path_params["name"], request.path_params["reference"]
        registry = state.registry
        inst = registry.instances.get(grant.instance_id)
        namespace, _, repo_name = name.partition("/")
        repo = None if inst is None else inst.repos_by_name.get((namespace, repo_name))
        if repo is None:
            return error_response(404, "NAME_UNKNOWN", f"repository name not known to registry: {name}")
        digest = reference
        if ":" not in reference:
            record = repo.tags.get(reference)
            if record is None:
                return error_response(404, "MANIFEST_UNKNOWN", f"manifest unknown: {name}:{reference}")
            digest = record.digest
        bucket = registry.bucket_of(inst)
        if digest not in registry.manifests.get(bucket.name, {}) or bucket.current(blob_key(digest)) is None:
            return error_response(404, "MANIFEST_UNKNOWN", f"manifest unknown: {name}@{digest}")
        body, media_type = registry.manifest_body(bucket.name, digest)
        accept = ",".join(request.headers.getlist("accept"))
        if accept and media_type not in accept and "*/*" not in accept:
            return error_response(404, "MANIFEST_UNKNOWN", f"manifest unknown in the accepted media types: {accept}")
        headers = {"Docker-Content-Digest": digest, "ETag": f'"{digest}"',
                   "Docker-Distribution-API-Version": "registry/2.0"}
        if request.method == "HEAD":
            headers["Content-Length"] = str(len(body))
            return Response(b"", media_type=media_type, headers=headers)
        store.manifest_fetches[digest] += 1
        return Response(body, media_type=media_type, headers=headers)

    async def admin_stats(request: Request) -> Response:
        return JSONResponse(store.stats())

    async def admin_expire(request: Request) -> Response:
        store.expire_all()
        return JSONResponse(store.stats())

    async def admin_reset_counts(request: Request) -> Response:
        store.counts.clear()
        store.manifest_fetches.clear()
        return JSONResponse(store.stats())

    admin = Starlette(routes=[
        Route("/registry", admin_stats, methods=["GET"]),
        Route("/registry/expire", admin_expire, methods=["POST"]),
        Route("/registry/reset-counts", admin_reset_counts, methods=["POST"]),
    ])
    return Starlette(routes=[
        Mount("/_emulator", app=admin),
        Route("/auth", auth, methods=["GET"]),
        Route("/v2/", ping, methods=["GET"]),
        Route("/v2/{name:path}/manifests/{reference}", manifest, methods=["GET", "HEAD"]),
    ])
