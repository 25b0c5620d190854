"""Adapter construction from the run configuration, in one place."""

from __future__ import annotations

from acr_gc.cloud.acr import AcrClient
from acr_gc.cloud.oss import OssClient
from acr_gc.config import Config


def acr_client(config: Config, instance_id: str | None = None, region: str | None = None) -> AcrClient:
    """The ACR adapter for the target instance, or for another instance (a sync target).

    Another instance is reached through the same endpoint when one is configured (the
    emulator serves every instance), else through its own region's public endpoint.
    """
    target = config.target
    if instance_id is not None and instance_id != target.instance_id:
        target = target.model_copy(update={"instance_id": instance_id, "region": region or target.region})
    return AcrClient(target, config.api)


def oss_client(config: Config) -> OssClient:
    return OssClient(config.target, config.api)
