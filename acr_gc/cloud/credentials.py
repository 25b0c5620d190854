"""Where the SDK clients get their credentials: the standard chain, or a Prefect Block.

``target.credentials``:

* ``chain`` — the Alibaba Cloud default credential chain of ``alibabacloud_credentials``
  (``ALIBABA_CLOUD_ACCESS_KEY_ID`` / ``ALIBABA_CLOUD_ACCESS_KEY_SECRET`` [/
  ``ALIBABA_CLOUD_SECURITY_TOKEN``], OIDC, the profile file ``~/.alibabacloud/credentials``
  or ``~/.aliyun/config.json``, the ECS RAM role from instance metadata …) — the library's
  ``Client()`` without a config; nothing is reimplemented here.
* ``block:<name>`` — an :class:`AlibabaCloudCredentials` Prefect Block (block type slug
  ``alibaba-cloud-credentials``), as prefect-aws's ``AwsCredentials``.

Either way :func:`resolve` returns a :class:`ResolvedCredentials` whose ``credential`` is
a credentials client for the SDK ``Config(credential=...)``. Secrets stay inside the
credentials client: they are registered with :func:`acr_gc.cloud.errors.register_secret`
the moment they are first read, so that no error text we build can carry them, and no
object made here shows them in its ``repr``/``str``.
"""

from __future__ import annotations

import hashlib
import os
import threading
from typing import Any

from pydantic import Field, PrivateAttr, SecretStr
from prefect.blocks.core import Block

from acr_gc.cloud.errors import AuthError, one_line, register_secret
from acr_gc.config import Api, Target


class AlibabaCloudCredentials(Block):
    """An Alibaba Cloud AccessKey pair (optionally with an STS token) for ACR and OSS.

    Create it once (``AlibabaCloudCredentials(access_key_id=..., access_key_secret=...)
    .save("prod")``) and point the run configuration at it with
    ``target.credentials: block:prod``.
    """

    _block_type_name = "Alibaba Cloud Credentials"
    _block_type_slug = "alibaba-cloud-credentials"
    _description = "An Alibaba Cloud AccessKey (and optional STS security token) for ACR and OSS API calls."
    _documentation_url = "https://www.alibabacloud.com/help/en/sdk/developer-reference/v2-manage-python-access-credentials"  # noqa: E501

    access_key_id: str = Field(title="AccessKey ID", description="The AccessKey ID.")
    access_key_secret: SecretStr = Field(title="AccessKey Secret", description="The AccessKey secret.")
    security_token: SecretStr | None = Field(
        default=None, title="Security Token", description="An STS security token, for temporary credentials."
    )
    # get_client's cache: adapters built from this Block (never saved with it)
    _clients: dict = PrivateAttr(default_factory=dict)
    _client_lock: Any = PrivateAttr(default_factory=threading.RLock)
    _resolved: Any = PrivateAttr(default=None)

    def get_client(self, client_type: str, target: Target, api: Api | None = None) -> Any:
        """The ``acr``, ``oss`` or ``registry`` adapter for ``target``, built with these
        credentials once per (client type, target, api) and cached on this Block — the shape
        of prefect-aws's ``AwsCredentials.get_client(client_type)``. All of them share one
        credentials client, so a loaded Block is read and turned into credentials once."""
        from acr_gc.cloud.acr import AcrClient
        from acr_gc.cloud.oss import OssClient
        from acr_gc.cloud.registry import RegistryClient

        api = api or Api()
        key = (client_type, target.model_dump_json(), api.model_dump_json())
        with self._client_lock:
            client = self._clients.get(key)
            if client is not None:
                return client
            if self._resolved is None:
                self._resolved = from_block(self, target.credentials)
            if client_type == "acr":
                client = AcrClient(target, api, credentials=self._resolved)
            elif client_type == "oss":
                client = OssClient(target, api, credentials=self._resolved)
            elif client_type == "registry":
                client = RegistryClient(target, api, acr=self.get_client("acr", target, api))
            else:
                raise ValueError(f"unknown client type {client_type!r}: acr, oss or registry")
            self._clients[key] = client
            return client

    def credential_client(self) -> Any:
        """A credentials client for the SDK Config (``credential=``)."""
        from alibabacloud_credentials.client import Client as CredentialClient
        from alibabacloud_credentials.models import Config as CredentialConfig

        secret = self.access_key_secret.get_secret_value()
        token = self.security_token.get_secret_value() if self.security_token else None
        register_secret(secret)
        register_secret(token)
        if token:
            config = CredentialConfig(type="sts", access_key_id=self.access_key_id,
                                      access_key_secret=secret, security_token=token)
        else:
            config = CredentialConfig(type="access_key", access_key_id=self.access_key_id,
                                      access_key_secret=secret)
        return CredentialClient(config)


class _GuardedCredential:
    """Delegates to an ``alibabacloud_credentials`` client; registers secrets as they are read.

    Thread-safe as far as the wrapped client is (the library's providers refresh under
    their own locks); its repr never shows a secret.
    """

    def __init__(self, inner: Any, source: str) -> None:
        self._inner = inner
        self._source = source

    def _seen(self, model: Any) -> Any:
        register_secret(getattr(model, "access_key_secret", None))
        register_secret(getattr(model, "security_token", None))
        register_secret(getattr(model, "bearer_token", None))
        return model

    def get_credential(self) -> Any:
        return self._seen(self._inner.get_credential())

    async def get_credential_async(self) -> Any:
        return self._seen(await self._inner.get_credential_async())

    def get_access_key_id(self) -> str:
        return self._inner.get_access_key_id()

    async def get_access_key_id_async(self) -> str:
        return await self._inner.get_access_key_id_async()

    def get_access_key_secret(self) -> str:
        value = self._inner.get_access_key_secret()
        register_secret(value)
        return value

    async def get_access_key_secret_async(self) -> str:
        value = await self._inner.get_access_key_secret_async()
        register_secret(value)
        return value

    def get_security_token(self) -> str | None:
        value = self._inner.get_security_token()
        register_secret(value)
        return value

    async def get_security_token_async(self) -> str | None:
        value = await self._inner.get_security_token_async()
        register_secret(value)
        return value

    def get_bearer_token(self) -> str | None:
        value = self._inner.get_bearer_token()
        register_secret(value)
        return value

    def get_type(self) -> str | None:
        return self._inner.get_type()

    def __repr__(self) -> str:
        return f"<credentials from {self._source}>"

    __str__ = __repr__


class ResolvedCredentials:
    """What the SDK ``Config`` needs: ``credential`` (a credentials client)."""

    def __init__(self, credential: Any, source: str) -> None:
        self.credential = credential
        self.source = source  # "chain" | "block:<name>": never a secret

    def __repr__(self) -> str:
        return f"ResolvedCredentials(source={self.source!r})"

    __str__ = __repr__

    def check(self) -> str:
        """Fetch the credential once (fails fast with AuthError); returns the AccessKey ID."""
        try:
            model = self.credential.get_credential()
        except Exception as exc:  # noqa: BLE001 - the library raises CredentialException and others
            raise AuthError("credentials", "resolve", self.source, type(exc).__name__, None,
                            one_line(exc)) from None
        return getattr(model, "access_key_id", None) or ""


_chain_lock = threading.Lock()
_chain: ResolvedCredentials | None = None
_chain_env: str | None = None


def _chain_environment() -> str:
    """A digest of the environment the default chain reads first (never the values)."""
    seen = sorted((k, v) for k, v in os.environ.items() if k.startswith("ALIBABA_CLOUD_"))
    return hashlib.sha256(repr(seen).encode()).hexdigest()


def resolve(target: Target) -> ResolvedCredentials:
    """The credentials ``target.credentials`` names; AuthError when they cannot be had.

    The default chain is built once per process and shared (its providers cache and
    refresh STS credentials themselves), and built anew when the ``ALIBABA_CLOUD_*``
    environment it read has changed (a process that switches identity).
    """
    source = target.credentials
    if source == "chain":
        global _chain, _chain_env
        with _chain_lock:
            environment = _chain_environment()
            if _chain is None or _chain_env != environment:
                _chain_env = environment
                _chain = _from_environment()
            if _chain is None:
                from alibabacloud_credentials.client import Client as CredentialClient

                try:
                    inner = CredentialClient()
                except Exception as exc:  # noqa: BLE001
                    raise AuthError("credentials", "resolve", "chain", type(exc).__name__, None,
                                    one_line(exc)) from None
                _chain = ResolvedCredentials(_GuardedCredential(inner, "chain"), "chain")
            return _chain
    return from_block(load_block(source), source)


def load_block(source: str) -> AlibabaCloudCredentials:
    """The Block ``block:<name>`` names, read from the Prefect API (one read per call:
    :class:`acr_gc.cloud.clients.CloudClients` calls it once per run)."""
    name = source.split(":", 1)[1]
    try:
        return AlibabaCloudCredentials.load(name, _sync=True)
    except ValueError as exc:
        raise AuthError("credentials", "load", source, "BlockNotFound", None,
                        f"no AlibabaCloudCredentials block named {name!r}: {one_line(exc)}") from None


def _from_environment() -> ResolvedCredentials | None:
    """The chain's first link, read now.

    ``alibabacloud_credentials`` reads ``ALIBABA_CLOUD_ACCESS_KEY_ID`` / ``…_SECRET`` /
    ``…_SECURITY_TOKEN`` once, when it is first imported; a process whose environment is
    set later (the demo, a worker that loads settings first) would not see them. So the
    environment keys are read here, each time the environment changes, and the library's
    chain serves the other links (profile file, OIDC, ECS RAM role).
    """
    access_key_id = os.environ.get("ALIBABA_CLOUD_ACCESS_KEY_ID")
    access_key_secret = os.environ.get("ALIBABA_CLOUD_ACCESS_KEY_SECRET")
    if not (access_key_id and access_key_secret):
        return None
    return from_keys(access_key_id, access_key_secret, os.environ.get("ALIBABA_CLOUD_SECURITY_TOKEN") or None,
                     source="chain")


def from_block(block: AlibabaCloudCredentials, source: str = "block") -> ResolvedCredentials:
    return ResolvedCredentials(_GuardedCredential(block.credential_client(), source), source)


def from_keys(access_key_id: str, access_key_secret: str, security_token: str | None = None,
              source: str = "keys") -> ResolvedCredentials:
    """Static keys (tests, the demo): the same path as a block, without saving one."""
    block = AlibabaCloudCredentials(
        access_key_id=access_key_id,
        access_key_secret=SecretStr(access_key_secret),
        security_token=SecretStr(security_token) if security_token else None,
    )
    return from_block(block, source)


def reset_chain() -> None:
    """Forget the cached default chain (tests that change the environment)."""
    global _chain
    with _chain_lock:
        _chain = None
