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
