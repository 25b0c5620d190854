"""Paging at the boundaries: 0, 1, PageSize, PageSize+1 items (ListRepoTag, ListRepository).

The expected pages are cut from an independently built expected order: tags by update
time newest first (here update time increases with the tag number, so newest = highest
number); repositories by (namespace, name).
"""

from __future__ import annotations

import pytest
from alibabacloud_cr20181201 import models as cr
from alibabacloud_tea_openapi.exceptions import ClientException

PS = 4
COUNTS = [0, 1, PS, PS + 1]


def dataset(credentials):
    instances = []
    for n in COUNTS:
        repos = [{"namespace": "ns", "name": f"repo{i:02d}", "tags": []} for i in range(n)]
        tagged = {"namespace": "ns", "name": "tagged", "tags": [
            {"tag": f"t{i:02d}", "digest": "sha256:" + f"{i:064x}", "updated": f"2024-01-{i + 1:02d}T00:00:00Z"}
            for i in range(n)]}
        instances.append({"instance_id": f"cri-p{n}", "name": f"p{n}", "bucket": f"b{n}", "namespaces": ["ns"],
                          "repositories": repos})
        instances.append({"instance_id": f"cri-t{n}", "name": f"t{n}", "bucket": f"b{n}", "namespaces": ["ns"],
                          "repositories": [tagged]})
    big = {"namespace": "ns", "name": "big", "tags": [
        {"tag": f"b{i:03d}", "digest": "sha256:" + f"{i:064x}", "updated": f"2024-01-01T00:{i // 60:02d}:{i % 60:02d}Z"}
        for i in range(101)]}
    instances.append({"instance_id": "cri-big", "name": "big", "bucket": "bbig", "namespaces": ["ns"], "repositories": [big]})
    buckets = [{"name": f"b{n}"} for n in COUNTS] + [{"name": "bbig"}]
    return {"clock": "2024-06-01T00:00:00Z", "credentials": credentials, "instances": instances, "buckets": buckets}


@pytest.fixture(scope="module")
def client(emulator_process, tmp_path_factory):
    from emulator_kit import AK, SECRET, make_acr_client

    emulator_process.load(dataset([{"access_key_id": AK, "access_key_secret": SECRET, "principal": "ops"}]))
    yield make_acr_client(emulator_process.acr_endpoint)
    emulator_process.reset()


def pages(fetch):
    """Pages 1.. until an empty one; returns the list of pages (item lists) before the empty one."""
    out, page_no = [], 1
    while True:
        body = fetch(page_no)
        assert (body.page_no, body.page_size) == (page_no, PS)
        items = body.images if hasattr(body, "images") else body.repositories
        if not items:
            return out, body
        out.append(items)
        page_no += 1


@pytest.mark.parametrize("n", COUNTS)
def test_list_repo_tag_boundaries(client, n):
    rid = client.list_repository(cr.ListRepositoryRequest(instance_id=f"cri-t{n}")).body.repositories[0].repo_id
    got, last = pages(lambda p: client.list_repo_tag(
        cr.ListRepoTagRequest(instance_id=f"cri-t{n}", repo_id=rid, page_no=p, page_size=PS)).body)
    expected = [f"t{i:02d}" for i in reversed(range(n))]  # newest (highest day) first
    assert [[i.tag for i in page] for page in got] == [expected[k:k + PS] for k in range(0, n, PS)]
    assert last.total_count == str(n)
    assert len(got) == {0: 0, 1: 1, PS: 1, PS + 1: 2}[n]


@pytest.mark.parametrize("n", COUNTS)
def test_list_repository_boundaries(client, n):
    got, last = pages(lambda p: client.list_repository(
        cr.ListRepositoryRequest(instance_id=f"cri-p{n}", page_no=p, page_size=PS)).body)
    expected = [f"repo{i:02d}" for i in range(n)]
    assert [[r.repo_name for r in page] for page in got] == [expected[k:k + PS] for k in range(0, len(expected), PS)]
    assert last.total_count == str(n)
    assert len(got) == {0: 0, 1: 1, PS: 1, PS + 1: 2}[n]


def test_default_and_max_page_size(client):
    rid = client.list_repository(cr.ListRepositoryRequest(instance_id="cri-big")).body.repositories[0].repo_id
    default = client.list_repo_tag(cr.ListRepoTagRequest(instance_id="cri-big", repo_id=rid)).body
    assert (default.page_size, len(default.images), default.total_count) == (30, 30, "101")
    full = client.list_repo_tag(cr.ListRepoTagRequest(instance_id="cri-big", repo_id=rid, page_size=100)).body
    assert [i.tag for i in full.images] == [f"b{i:03d}" for i in range(100, 0, -1)]
    rest = client.list_repo_tag(cr.ListRepoTagRequest(instance_id="cri-big", repo_id=rid, page_size=100, page_no=2)).body
    assert [i.tag for i in rest.images] == ["b000"]
    for bad in ({"page_size": 0}, {"page_size": 101}, {"page_no": 0}):
        with pytest.raises(ClientException) as err:
            client.list_repo_tag(cr.ListRepoTagRequest(instance_id="cri-big", repo_id=rid, **bad))
        assert (err.value.status_code, err.value.code) == (400, "PARAM_INVALID")
