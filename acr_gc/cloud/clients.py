"""Adapter construction from the run configuration, in one place.

:class:`CloudClients` is the one bundle of a flow run (or a CLI command): built once from
the Config, it resolves the credentials once (a ``block:<name>`` credential loads the Block
from the Prefect API once) and builds each adapter once, on first use; every step is handed
the adapter it uses. Before, each step built its own client from the whole Config, and
each construction of a ``block:`` credential was one more Block read from the Prefect API.

:func:`acr_client` / :func:`oss_client` build one adapter on its own (tests, one-off reads).
"""

from __future__ import annotations

import threading

from acr_gc.cloud.acr import AcrClient
from acr_gc.cloud.credentials import AlibabaCloudCredentials, ResolvedCredentials, load_block, resolve
from acr_gc.cloud.oss import OssClient
from acr_gc.cloud.registry import RegistryClient
from acr_gc.config import Api, Config, Target


def instance_target(target: Target, instance_id: str | None, region: str | None = None) -> Target:
    """``target`` pointed at another instance (a sync target), or itself.

    Another instance is reached through the same endpoint when one is configured (the
    emulator serves every instance), else through its own region's public endpoint.
    """
    if instance_id is None or instance_id == target.instance_id:
        return target
    return target.model_copy(update={"instance_id": instance_id, "region": region or target.region})


def acr_client(config: Config, instance_id: str | None = None, region: str | None = None) -> AcrClient:
    """One ACR adapter on its own, for the target instance or another (a sync target)."""
    return AcrClient(instance_target(config.target, instance_id, region), config.api)


def oss_client(config: Config) -> OssClient:
    """One OSS adapter on its own, for the target bucket."""
    return OssClient(config.target, config.api)


class CloudClients:
    """The adapters of one run: ``acr``, ``oss``, ``registry``, and ``acr_for(instance, region)``
    / ``oss_for(bucket)`` for other instances (sync targets) and buckets (``acr-gc status``).

    Built lazily and once each, thread-safe (the steps run on a thread pool); the
    credentials are resolved on first use, once, so a bad credential fails where the first
    cloud call is made (preflight), as before. With ``block:<name>`` the Block is loaded
    once and builds the adapters itself (:meth:`AlibabaCloudCredentials.get_client`); with
    the default chain the adapters share the process's chain. Never a flow parameter (not
    serialisable): flows build it from their Config parameter.
    """

    def __init__(self, target: Target, api: Api | None = None) -> None:
        self.target = target
        self.api = api or Api()
        self._lock = threading.RLock()
        self._block: AlibabaCloudCredentials | None = None
        self._credentials: ResolvedCredentials | None = None
        self._acr: dict[str, AcrClient] = {}
        self._oss: dict[str, OssClient] = {}
        self._registry: RegistryClient | None = None

    @classmethod
    def from_config(cls, config: Config) -> "CloudClients":
        return cls(config.target, config.api)

    def __repr__(self) -> str:
        return f"CloudClients(instance_id={self.target.instance_id!r}, credentials={self.target.credentials!r})"

    def _resolve(self) -> None:
        if self._block is None and self._credentials is None:
            source = self.target.credentials
            if source.startswith("block:"):
                self._block = load_block(source)
            else:
                self._credentials = resolve(self.target)

    def _build(self, client_type: str, target: Target):
        self._resolve()
        if self._block is not None:
            return self._block.get_client(client_type, target, self.api)
        if client_type == "acr":
            return AcrClient(target, self.api, credentials=self._credentials)
        if client_type == "oss":
            return OssClient(target, self.api, credentials=self._credentials)
        return RegistryClient(target, self.api, acr=self.acr)

    def _once(self, cache: dict, key: str, client_type: str, target: Target):
        """The adapter cached under ``key``, built on first use."""
        with self._lock:
            if key not in cache:
                cache[key] = self._build(client_type, target)
            return cache[key]

    def acr_for(self, instance_id: str | None = None, region: str | None = None) -> AcrClient:
        """The ACR adapter of ``instance_id`` (default: the target), one per instance."""
        target = instance_target(self.target, instance_id, region)
        return self._once(self._acr, target.instance_id, "acr", target)

    @property
    def acr(self) -> AcrClient:
        return self.acr_for()

    def oss_for(self, bucket: str | None = None) -> OssClient:
        """The OSS adapter of ``bucket`` (default: the target's), one per bucket."""
        target = self.target if bucket in (None, self.target.bucket) else self.target.model_copy(
            update={"bucket": bucket})
        return self._once(self._oss, target.bucket, "oss", target)

    @property
    def oss(self) -> OssClient:
        return self.oss_for()

    @property
    def registry(self) -> RegistryClient:
        """The registry's manifest reader (``target.registry_endpoint`` must be set)."""
        with self._lock:
            if self._registry is None:
                self._registry = self._build("registry", self.target)
            return self._registry

    def close(self) -> None:
        """Close the registry's HTTP connections (the SDK clients hold none between calls)."""
        with self._lock:
            if self._registry is not None:
                self._registry.close()
