"""Credentials from a Prefect Block, saved and loaded through a real Prefect server."""

from acr_gc.cloud.credentials import AlibabaCloudCredentials, resolve
from acr_gc.config import Target

SECRET = "block-secret-never-shown"


def test_block_credentials_resolve_by_name(prefect_api_url):
    AlibabaCloudCredentials(access_key_id="AKIDFROMBLOCK", access_key_secret=SECRET).save(
        "acr-gc-test", overwrite=True
    )
    resolved = resolve(Target(instance_id="cri-x", bucket="b", credentials="block:acr-gc-test"))
    assert resolved.check() == "AKIDFROMBLOCK"
    assert resolved.source == "block:acr-gc-test"
    assert SECRET not in repr(resolved) and SECRET not in str(resolved)


def test_a_missing_block_is_an_auth_error_naming_it(prefect_api_url):
    import pytest

    from acr_gc.cloud.errors import AuthError

    with pytest.raises(AuthError, match="no AlibabaCloudCredentials block named 'nowhere'"):
        resolve(Target(instance_id="cri-x", bucket="b", credentials="block:nowhere"))


def test_block_get_client_builds_each_client_once_per_type_and_target():
    """prefect-aws's ``get_client`` shape: one adapter per (type, target), cached on the Block."""
    import pytest

    block = AlibabaCloudCredentials(access_key_id="AKIDFROMBLOCK", access_key_secret=SECRET)
    target = Target(instance_id="cri-x", bucket="b", credentials="block:acr-gc-test",
                    registry_endpoint="127.0.0.1:9")
    acr = block.get_client("acr", target)
    assert block.get_client("acr", target) is acr
    assert block.get_client("oss", target) is block.get_client("oss", target)
    registry = block.get_client("registry", target)
    try:
        assert registry._acr is acr  # the registry's token calls go through the same ACR adapter
    finally:
        registry.close()
    other = block.get_client("acr", target.model_copy(update={"instance_id": "cri-y"}))
    assert other is not acr and other.instance_id == "cri-y"
    assert acr._credentials is other._credentials  # one credentials client for them all
    with pytest.raises(ValueError, match="unknown client type"):
        block.get_client("ecs", target)
    for shown in (repr(acr), repr(other), repr(block.get_client("oss", target))):
        assert SECRET not in shown


def test_cloud_clients_resolve_once_and_build_each_adapter_once(monkeypatch):
    """The run's bundle: the chain resolved once, one adapter per instance / bucket."""
    from acr_gc.cloud import credentials
    from acr_gc.cloud.clients import CloudClients

    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", "AKIDFROMENV")
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", SECRET)
    credentials.reset_chain()
    try:
        clients = CloudClients(Target(instance_id="cri-x", bucket="b", region="cn-hangzhou"))
        assert clients.acr is clients.acr is clients.acr_for("cri-x")
        replica = clients.acr_for("cri-y", "cn-shanghai")
        assert replica is clients.acr_for("cri-y", "cn-shanghai") and replica is not clients.acr
        assert (replica.instance_id, replica.target.region) == ("cri-y", "cn-shanghai")
        assert clients.oss is clients.oss_for("b") and clients.oss_for("other").bucket == "other"
        assert clients.oss._credentials is clients.acr._credentials  # resolved once
        assert SECRET not in repr(clients)
    finally:
        credentials.reset_chain()
