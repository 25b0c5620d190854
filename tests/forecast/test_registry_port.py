"""The emulator's registry port (OCI distribution API) and the registry adapter against it.

Expectations come from the hand-worked dataset and from the bucket's objects (the
emulator's storage), never from the adapter."""

from __future__ import annotations

import base64
import hashlib
import json
import sys
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).parent))
import forecast_support as fs  # noqa: E402

from acr_gc.cloud import calls  # noqa: E402
from acr_gc.cloud.registry import ACCEPT, RegistryClient  # noqa: E402
from acr_gc.ledger.store import Ledger  # noqa: E402
from acr_gc.tasks.forecast import read_graph  # noqa: E402
from forecast_support import adapters, make_config, planned_tags  # noqa: E402

BLOB_TYPES = {"application/vnd.docker.distribution.manifest.v2+json", "application/vnd.oci.image.manifest.v1+json"}


@pytest.fixture
def loaded(emulator, tmp_path):
    emulator.load(fs.handworked_dataset())
    calls.reset_limiters()
    return emulator, make_config(emulator, tmp_path)


def token(emulator, config) -> tuple[str, str]:
    """A bearer token obtained the way a docker client does, with GetAuthorizationToken's credentials."""
    acr, _, registry = adapters(config)
    user, password, expire_ms = acr.get_authorization_token()
    assert user and password and expire_ms > 0
    base = f"http://{emulator.registry_endpoint}"
    challenge = httpx.get(f"{base}/v2/", trust_env=False)
    assert challenge.status_code == 401
    realm = challenge.headers["www-authenticate"].split('realm="')[1].split('"')[0]
    basic = base64.b64encode(f"{user}:{password}".encode()).decode()
    answer = httpx.get(realm, params={"scope": "repository:app/web:pull"}, headers={"Authorization": f"Basic {basic}"},
                       trust_env=False)
    assert answer.status_code == 200
    return base, answer.json()["token"]


def get(url: str, bearer: str | None, accept: str = ACCEPT) -> httpx.Response:
    headers = {"Accept": accept}
    if bearer is not None:
        headers["Authorization"] = f"Bearer {bearer}"
    return httpx.get(url, headers=headers, trust_env=False)


def test_missing_foreign_and_expired_tokens_are_refused_with_a_challenge(loaded):
    emulator, config = loaded
    base, bearer = token(emulator, config)
    url = f"{base}/v2/app/web/manifests/{fs.d('MW1')}"
    assert get(url, bearer).status_code == 200
    foreign = base64.urlsafe_b64encode(hashlib.sha256(b"not issued here").digest()).decode().rstrip("=")
    for refused in (get(url, None), get(url, foreign)):
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"].startswith('Bearer realm="http://')
        assert refused.json()["errors"][0]["code"] == "UNAUTHORIZED"
    emulator.expire_registry_tokens()
    expired = get(url, bearer)
    assert expired.status_code == 401 and 'error="invalid_token"' in expired.headers["www-authenticate"]


def test_manifests_are_consistent_with_the_bucket_objects(loaded):
    emulator, config = loaded
    base, bearer = token(emulator, config)
    sizes = {o["key"]: o["size"] for o in emulator.objects(fs.BUCKET)["current"]}
    from acr_gc.emulator.registry import blob_key  # the layout is the emulator's documented one

    digests = [fs.d(n) for n in ("MW1", "MW2", "MS", "MA1", "MA2", "MU", "MI", "MJ", "MI-amd", "MJ-amd", "MI-arm")]
    for digest in digests:
        response = get(f"{base}/v2/app/web/manifests/{digest}", bearer)
        assert response.status_code == 200, digest
        assert response.headers["docker-content-digest"] == digest
        assert len(response.content) == sizes[blob_key(digest)]
        doc = json.loads(response.content)
        assert response.headers["content-type"] == doc["mediaType"]
        for descriptor in ([doc["config"], *doc["layers"]] if "config" in doc else doc["manifests"]):
            assert descriptor["size"] == sizes[blob_key(descriptor["digest"])]
    by_tag = get(f"{base}/v2/app/multi/manifests/m1", bearer)
    assert by_tag.headers["docker-content-digest"] == fs.d("MI")
    assert by_tag.headers["content-type"] == "application/vnd.oci.image.index.v1+json"
    assert {m["platform"]["architecture"] for m in by_tag.json()["manifests"]} == {"amd64", "arm64"}
    assert get(f"{base}/v2/app/web/manifests/{fs.d('unknown')}", bearer).status_code == 404
    assert get(f"{base}/v2/app/nope/manifests/{fs.d('MW1')}", bearer).status_code == 404
    # an index is not served to a client that does not accept indexes
    assert get(f"{base}/v2/app/multi/manifests/m1", bearer, accept=sorted(BLOB_TYPES)[0]).status_code == 404


def test_adapter_renews_an_expired_token_mid_inventory(loaded):
    emulator, config = loaded
    acr, _, registry = adapters(config)
    first = registry.get_manifest("app", "web", fs.d("MW1"))
    grants = emulator.registry_stats()["authorization_tokens"]
    emulator.expire_registry_tokens()
    second = registry.get_manifest("app", "api", fs.d("MA1"))
    assert first.size == second.size == 1024 and second.blobs[0] == (fs.d("CA1"), 3_000)
    assert registry.renewals == 1
    assert emulator.registry_stats()["authorization_tokens"] == grants + 1


def test_second_run_on_an_unchanged_instance_fetches_no_manifest(loaded, tmp_path):
    emulator, config = loaded
    acr, _, registry = adapters(config)
    planned = planned_tags(acr)
    ledger = Ledger(config.ledger.url)
    start = emulator.registry_stats()["manifest_fetches"]
    first = read_graph(registry, planned, ledger)
    middle = emulator.registry_stats()["manifest_fetches"]
    # 7 tagged digests (MW1, MW2, MS, MA1, MA2, MI, MJ) plus the 3 children of the two indexes;
    # MU is untagged, so nothing reads it
    assert middle - start == first.fetched == 10
    second = read_graph(registry, planned, ledger)
    assert emulator.registry_stats()["manifest_fetches"] == middle
    assert second.fetched == 0 and second.cached == 10
    assert second.manifests == first.manifests


def test_indexes_survive_a_dump_and_restore(loaded):
    emulator, config = loaded
    emulator.restore(emulator.dump())
    base, bearer = token(emulator, config)
    index = get(f"{base}/v2/app/multi/manifests/m2", bearer)
    assert index.status_code == 200
    assert [m["digest"] for m in index.json()["manifests"]] == [fs.d("MJ-amd"), fs.d("MI-arm")]


def test_adapter_rides_over_the_registry_ports_faults_and_throttling(loaded):
    """The registry port has the same fault and QPS settings as the others; the adapter retries."""
    emulator, config = loaded
    config = config.model_copy(update={"api": config.api.model_copy(update={"retries": 12})})
    acr, _, registry = adapters(config)
    planned = planned_tags(acr)
    emulator.set_faults(fault_rate=0.3, seed=7, qps=40)
    try:
        graph = read_graph(registry, planned, Ledger(config.ledger.url))
    finally:
        counts = emulator.dump()["faults"]["fault_counts"]
        emulator.set_faults(fault_rate=0, qps=0)
    assert graph.unreadable == {} and graph.fetched == 10
    assert any(name.startswith("registry:") for name in counts), counts


def test_a_new_index_reuses_a_cached_child(loaded):
    """m2's index brings MI-arm into the cache; m1's index, read later, fetches only itself and MI-amd."""
    emulator, config = loaded
    acr, _, registry = adapters(config)
    planned = planned_tags(acr)
    ledger = Ledger(config.ledger.url)
    before = emulator.registry_stats()["manifest_fetches_by_digest"]
    read_graph(registry, planned[planned["tag"] == "m2"], ledger)
    second = read_graph(registry, planned[planned["repo"] == "multi"], ledger)
    after = emulator.registry_stats()["manifest_fetches_by_digest"]
    fetched = {d: after.get(d, 0) - before.get(d, 0) for d in after}
    assert {d: n for d, n in fetched.items() if n} == {fs.d(n): 1 for n in ("MJ", "MJ-amd", "MI-arm", "MI", "MI-amd")}
    assert second.fetched == 2 and second.cached == 3
