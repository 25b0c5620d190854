"""Manifest documents as registries serve them (real-world shapes written here by hand)."""

from __future__ import annotations

import json

import pytest

from acr_gc.cloud.registry import Unreadable, parse_manifest

DOCKER_LIST = {
    "schemaVersion": 2,
    "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
    "manifests": [
        {"mediaType": "application/vnd.docker.distribution.manifest.v2+json", "size": 528, "digest": "sha256:aa",
         "platform": {"architecture": "amd64", "os": "linux"}},
        {"mediaType": "application/vnd.docker.distribution.manifest.v2+json", "size": 528, "digest": "sha256:bb",
         "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"}},
    ],
}
OCI_IMAGE_NO_MEDIA_TYPE_FIELD = {  # mediaType is optional in an OCI manifest: the header tells
    "schemaVersion": 2,
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": 1469, "digest": "sha256:cc"},
    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "size": 3370706, "digest": "sha256:dd"}],
}


def test_docker_manifest_list_children_are_followed():
    body = json.dumps(DOCKER_LIST).encode()
    m = parse_manifest("sha256:list", "application/vnd.docker.distribution.manifest.list.v2+json", body)
    assert m.children == ("sha256:aa", "sha256:bb") and m.blobs == () and m.size == len(body)


def test_oci_image_by_content_type_header():
    body = json.dumps(OCI_IMAGE_NO_MEDIA_TYPE_FIELD).encode()
    m = parse_manifest("sha256:img", "application/vnd.oci.image.manifest.v1+json", body)
    assert m.blobs == (("sha256:cc", 1469), ("sha256:dd", 3370706)) and m.children == ()


@pytest.mark.parametrize("body, media_type", [
    (json.dumps({"schemaVersion": 1, "name": "x", "fsLayers": []}).encode(),
     "application/vnd.docker.distribution.manifest.v1+prettyjws"),
    (b"not json", "application/vnd.oci.image.manifest.v1+json"),
])
def test_unknown_kinds_are_unreadable(body, media_type):
    with pytest.raises(Unreadable):
        parse_manifest("sha256:odd", media_type, body)


@pytest.mark.parametrize("endpoint, base", [
    ("127.0.0.1:9103", "http://127.0.0.1:9103"),
    ("localhost:9103", "http://localhost:9103"),
    ("[::1]:9103", "http://[::1]:9103"),
    ("10.0.0.5:80", "https://10.0.0.5:80"),
    ("cri-demo-registry.cn-hangzhou.cr.aliyuncs.com", "https://cri-demo-registry.cn-hangzhou.cr.aliyuncs.com"),
])
def test_plain_http_only_for_loopback(endpoint, base):
    from acr_gc.cloud.registry import RegistryClient
    from acr_gc.config import Target

    target = Target(instance_id="cri-x", bucket="b-x", registry_endpoint=endpoint)
    client = RegistryClient(target, acr=object())  # the token source is never asked here
    try:
        assert client.base == base
    finally:
        client.close()
