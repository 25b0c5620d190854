"""The registry adapter: manifests read through the instance's OCI distribution API.

The ACR OpenAPI gives image sizes, never layers; the registry domain serves each
manifest's config and layer descriptors with exact sizes, which is what an exact
forecast needs (DESIGN section 3). The flow, as ``docker``/``crane`` do it:

1. ``GetAuthorizationToken`` (the cr20181201 SDK, through ``AcrClient``) → a temporary
   user name and password, registered as secrets so they never reach a log.
2. ``GET /v2/`` → ``401`` with ``WWW-Authenticate``: ``Bearer realm=…,service=…`` (trade
   the temporary credentials, HTTP Basic, at the realm for a bearer token per repository
   scope) or ``Basic`` (send them with every request).
3. ``GET /v2/<ns>/<repo>/manifests/<digest>`` with the standard ``Accept`` list; an image
   index / manifest list has its child manifests fetched too.

A ``401`` on the way (token or credentials expired mid-inventory) renews what expired and
tries once more. Every request takes a slot of the shared ``REGISTRY`` rate limiter and
is retried like every other call (``calls.call``: throttling, 5xx, dropped connections).

Why not an OCI client library: ``oras`` (oras-py, the kept Python one) is built on
``requests`` with its own session, auth and retry handling, and takes a Docker-style
login rather than an OpenAPI token source; its calls could not go through this project's
shared limiter, per-attempt retry and error classification, and it offers nothing beyond
the three requests above. ``httpx`` (already installed with Prefect) does the HTTP.
Plain HTTP is used only for loopback endpoints (the emulator); anything else is HTTPS.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Iterable

import httpx

from acr_gc.cloud import calls
from acr_gc.cloud.errors import Classified, to_cloud_error
from acr_gc.config import Api, Target

SERVICE = "REGISTRY"

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
IMAGE_TYPES = (DOCKER_MANIFEST, OCI_MANIFEST)
INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
ACCEPT = ", ".join((*IMAGE_TYPES, *INDEX_TYPES))


@dataclass(frozen=True)
class Manifest:
    """One manifest as the forecast needs it: its own stored size and what it references."""

    digest: str
    media_type: str
    size: int  # bytes of the manifest document (its blob in the bucket)
    blobs: tuple[tuple[str, int], ...] = ()  # (digest, size) of config and layers
    children: tuple[str, ...] = ()  # child manifest digests of an index


class Unreadable(Exception):
    """A manifest that cannot be read: gone (404) or of a media type the forecast cannot follow."""


def parse_manifest(digest: str, media_type: str, body: bytes) -> Manifest:
    """The descriptors of a manifest document (raises ``Unreadable`` for an unknown kind)."""
    try:
        doc = json.loads(body)
    except ValueError:
        raise Unreadable(f"{digest}: not JSON") from None
    kind = doc.get("mediaType") or media_type.split(";")[0].strip()
    if kind in INDEX_TYPES or ("manifests" in doc and kind not in IMAGE_TYPES):
        return Manifest(digest, kind or OCI_INDEX, len(body),
                        children=tuple(str(m["digest"]) for m in doc.get("manifests", [])))
    if kind in IMAGE_TYPES or ("layers" in doc and "config" in doc):
        descriptors = [doc["config"], *doc.get("layers", [])] if doc.get("config") else doc.get("layers", [])
        return Manifest(digest, kind or OCI_MANIFEST, len(body),
                        blobs=tuple((str(d["digest"]), int(d.get("size", 0))) for d in descriptors))
    raise Unreadable(f"{digest}: unknown media type {kind or '(none)'}")


def _is_loopback(host: str) -> bool:
    name = host[1:].split("]", 1)[0] if host.startswith("[") else host.rsplit(":", 1)[0]
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _challenge(header: str) -> tuple[str, dict[str, str]]:
    scheme, _, rest = header.partition(" ")
    return scheme.lower(), {k.lower(): v for k, v in re.findall(r'(\w+)="([^"]*)"', rest)}


class RegistryClient:
    """Manifest reads for one instance's registry domain (``target.registry_endpoint``)."""

    def __init__(self, target: Target, api: Api | None = None, *, acr=None,
                 backoff: calls.Backoff = calls.DEFAULT_BACKOFF) -> None:
        if not target.registry_endpoint:
            raise ValueError("target.registry_endpoint is not set")
        from acr_gc.cloud.acr import AcrClient

        self.api = api or Api()
        self.endpoint = target.registry_endpoint
        scheme = "http" if _is_loopback(self.endpoint) else "https"
        self.base = f"{scheme}://{self.endpoint}"
        self.instance_id = target.instance_id
        self.backoff = backoff
        self._acr = acr or AcrClient(target, self.api)
        self._http = httpx.Client(
            timeout=httpx.Timeout(self.api.timeout_s, connect=min(10.0, self.api.timeout_s)),
            limits=httpx.Limits(max_connections=self.api.concurrency * 2),
            trust_env=False, follow_redirects=True,
        )
        self._lock = threading.Lock()
        self._credentials: tuple[str, str] | None = None
        self._challenge: tuple[str, dict[str, str]] | None = None
        self._bearers: dict[str, str] = {}
        self.renewals = 0  # credentials fetched again after an expiry (for tests and figures)

    def __repr__(self) -> str:
        return f"RegistryClient(instance_id={self.instance_id!r}, endpoint={self.endpoint!r})"

    def close(self) -> None:
        self._http.close()

    # -- authentication

    def _basic(self, renew: bool = False) -> str:
        with self._lock:
            if self._credentials is None or renew:
                if self._credentials is not None:
                    self.renewals += 1
                user, password, _ = self._acr.get_authorization_token()
                self._credentials = (user, password)
                self._bearers.clear()
            user, password = self._credentials
        return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    def _scheme(self) -> tuple[str, dict[str, str]]:
        if self._challenge is None:
            response = self._http.get(f"{self.base}/v2/")
            header = response.headers.get("www-authenticate", "")
            if response.status_code == 401 and header:
                self._challenge = _challenge(header)
            elif response.status_code == 200:
                self._challenge = ("none", {})  # an open registry
            else:  # throttled, unavailable, …: retried by the caller, never mistaken for "no auth"
                self._raise_for(response, "Ping", self.endpoint)
                raise to_cloud_error(Classified(str(response.status_code), response.status_code,
                                                "unexpected answer to /v2/", None, "client"), SERVICE, "Ping",
                                     self.endpoint)
        return self._challenge

    def _authorization(self, scope: str, renew: bool = False) -> str | None:
        """The Authorization header for ``scope``; ``renew``: the last one was refused."""
        scheme, params = self._scheme()
        if scheme == "none":
            return None
        if scheme == "basic":
            return self._basic(renew)
        with self._lock:
            token = None if renew else self._bearers.get(scope)
        if token is not None:
            return f"Bearer {token}"
        query = {"service": params.get("service", ""), "scope": scope}
        response = self._http.get(params["realm"], params=query, headers={"Authorization": self._basic()})
        if response.status_code == 401:  # the temporary credentials expired: fetch new ones
            response = self._http.get(params["realm"], params=query, headers={"Authorization": self._basic(True)})
        self._raise_for(response, "Token", scope)
        doc = response.json()
        token = doc.get("token") or doc.get("access_token")
        from acr_gc.cloud.errors import register_secret

        register_secret(token)
        with self._lock:
            self._bearers[scope] = token
        return f"Bearer {token}"

    # -- requests

    def _raise_for(self, response: httpx.Response, action: str, resource: str) -> None:
        if response.status_code < 400:
            return
        try:
            errors = response.json().get("errors") or [{}]
            code, message = str(errors[0].get("code") or response.status_code), str(errors[0].get("message") or "")
        except ValueError:
            code, message = str(response.status_code), response.reason_phrase
        status = response.status_code
        kind = ("throttled" if status == 429 else "server" if status >= 500 else "not_found" if status == 404
                else "auth" if status == 401 else "forbidden" if status == 403 else "client")
        raise to_cloud_error(Classified(code, status, message, None, kind), SERVICE, action, resource)

    def _get(self, action: str, resource: str, fn: Callable[[], httpx.Response]) -> httpx.Response:
        def run() -> httpx.Response:
            try:
                response = fn()
            except httpx.TimeoutException as exc:
                raise to_cloud_error(Classified(type(exc).__name__, None, "timed out", None, "network", True),
                                     SERVICE, action, resource) from None
            except httpx.TransportError as exc:
                raise to_cloud_error(Classified(type(exc).__name__, None, str(exc)[:200], None, "network", True),
                                     SERVICE, action, resource) from None
            if response.status_code != 404:
                self._raise_for(response, action, resource)
            return response

        return calls.call(SERVICE, action, resource, run, api=self.api, backoff=self.backoff)

    def get_manifest(self, namespace: str, repo: str, digest: str) -> Manifest:
        """One manifest by digest; ``Unreadable`` when the registry does not have it (404) or
        it is of an unknown kind."""
        name = f"{namespace}/{repo}"
        scope = f"repository:{name}:pull"
        url = f"{self.base}/v2/{name}/manifests/{digest}"

        def fetch() -> httpx.Response:
            headers = {"Accept": ACCEPT}
            auth = self._authorization(scope)
            if auth:
                headers["Authorization"] = auth
            response = self._http.get(url, headers=headers)
            if response.status_code == 401:  # expired mid-inventory: renew once, then ask again
                headers["Authorization"] = self._authorization(scope, renew=True) or ""
                response = self._http.get(url, headers=headers)
            return response

        response = self._get("GetManifest", f"{self.instance_id}/{name}@{digest}", fetch)
        if response.status_code == 404:
            raise Unreadable(f"{name}@{digest}: not found")
        return parse_manifest(digest, response.headers.get("content-type", ""), response.content)

    def fetch_all(
        self, refs: Iterable[tuple[str, str, str]], known: set[str] | None = None, *, follow_children: bool = True,
    ) -> tuple[dict[str, Manifest], dict[str, str]]:
        """Every manifest ``refs`` (namespace, repo, digest) reach, children of indexes included
        (unless ``follow_children`` is false), except the digests in ``known`` (already cached:
        manifests are immutable).

        Returns (manifests fetched by digest, unreadable digests → why), at ``api.concurrency``.
        """
        known = set(known or ())
        first: dict[str, tuple[str, str]] = {}
        for namespace, repo, digest in refs:
            if digest not in known and digest not in first:
                first[digest] = (namespace, repo)
        fetched: dict[str, Manifest] = {}
        unreadable: dict[str, str] = {}
        lock = threading.Lock()

        def one(item: tuple[str, tuple[str, str]]) -> list[tuple[str, tuple[str, str]]]:
            digest, (namespace, repo) = item
            try:
                manifest = self.get_manifest(namespace, repo, digest)
            except Unreadable as exc:
                with lock:
                    unreadable[digest] = str(exc)
                return []
            with lock:
                fetched[digest] = manifest
                if not follow_children:
                    return []
                todo = [c for c in manifest.children if c not in known and c not in fetched and c not in unreadable]
                known.update(todo)
            return [(child, (namespace, repo)) for child in todo]

        with ThreadPoolExecutor(max_workers=self.api.concurrency) as pool:
            wave = list(first.items())
            known.update(first)
            while wave:
                wave = [child for children in pool.map(one, wave) for child in children]
        return fetched, unreadable

