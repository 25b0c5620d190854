"""Every ACR action the project uses, through the real SDK client against the emulator process.

Expected values are literals from the dataset below (sizes summed by hand in comments).
"""

from __future__ import annotations

import hashlib

import pytest
from alibabacloud_cr20181201 import models as cr
from alibabacloud_tea_openapi.exceptions import ClientException

D1 = "sha256:" + "d1" * 32
D2 = "sha256:" + "d2" * 32
LA, LB, LC = ("sha256:" + c * 64 for c in "abc")


def dataset(credentials):
    return {
        "clock": "2024-06-01T00:00:00Z",
        "credentials": credentials,
        "layers": {LA: 700, LB: 300, LC: 50},
        "instances": [
            {
                "instance_id": "cri-a",
                "name": "alpha",
                "region": "cn-hangzhou",
                "gc_whitelisted": True,
                "bucket": "bucket-a",
                "namespaces": ["apps", "base"],
                "repositories": [
                    {
                        "namespace": "apps",
                        "name": "web",
                        "source_code": {"type": "GITHUB", "namespace": "acme", "name": "web"},
                        "build_rules": [{"push_type": "GIT_BRANCH", "push_name": "main", "image_tag": "main-*"}],
                        "sync_rules": [{"target_instance_id": "cri-b", "target_namespace": "mirror", "target_repo": "web"}],
                        "tags": [
                            {"tag": "v1", "digest": D1, "updated": "2024-01-01T00:00:00Z", "layers": [LA, LB]},
                            {"tag": "v2", "digest": D2, "updated": "2024-02-01T00:00:00Z", "layers": [LA, LC]},
                        ],
                    },
                    {"namespace": "base", "name": "os", "tags": []},
                ],
                "charts": [{"namespace": "base", "name": "app-chart", "versions": [{"version": "1.0.0", "size": 1234}]}],
                "lifecycle_rules": [
                    {"scope": "NAMESPACE", "namespace": "apps", "retention_tag_count": 5, "tag_regexp": "release-.*"},
                    {"scope": "INSTANCE", "retention_tag_count": 30, "enable_delete_tag": False},
                ],
            },
            {"instance_id": "cri-b", "name": "beta", "region": "cn-shanghai", "bucket": "bucket-b",
             "namespaces": ["mirror"], "repositories": [{"namespace": "mirror", "name": "web", "tags": []}]},
        ],
        "buckets": [{"name": "bucket-a", "versioning": "Enabled"}, {"name": "bucket-b"}],
    }


@pytest.fixture
def client(emulator, acr_client, credentials):
    emulator.load(dataset(credentials))
    return acr_client()


def repo_id(client, ns, name, instance="cri-a"):
    body = client.list_repository(cr.ListRepositoryRequest(instance_id=instance, repo_namespace_name=ns, repo_name=name)).body
    assert body.total_count == "1"
    return body.repositories[0].repo_id


def ms(iso_day):
    from datetime import datetime, timezone

    return int(datetime.fromisoformat(iso_day).replace(tzinfo=timezone.utc).timestamp() * 1000)


def test_instances(client):
    got = client.get_instance(cr.GetInstanceRequest(instance_id="cri-a")).body
    assert (got.code, got.is_success, got.instance_id, got.instance_name, got.instance_status) == (
        "success", True, "cri-a", "alpha", "RUNNING")
    assert got.request_id
    listed = client.list_instance(cr.ListInstanceRequest()).body
    assert listed.total_count == 2
    assert [(i.instance_id, i.region_id) for i in listed.instances] == [("cri-a", "cn-hangzhou"), ("cri-b", "cn-shanghai")]
    usage = client.get_instance_usage(cr.GetInstanceUsageRequest(instance_id="cri-a")).body
    assert (usage.namespace_usage, usage.repo_usage, usage.chart_repo_usage) == ("2", "2", "1")
    with pytest.raises(ClientException) as err:
        client.get_instance(cr.GetInstanceRequest(instance_id="cri-nope"))
    assert (err.value.code, err.value.status_code) == ("INSTANCE_NOT_EXIST", 404)


def test_namespaces_and_repositories(client):
    ns = client.list_namespace(cr.ListNamespaceRequest(instance_id="cri-a")).body
    assert [n.namespace_name for n in ns.namespaces] == ["apps", "base"]
    assert ns.total_count == "2"
    expected_ns_id = "crn-" + hashlib.sha256(b"cri-a\x00apps").hexdigest()[:16]
    assert ns.namespaces[0].namespace_id == expected_ns_id
    repos = client.list_repository(cr.ListRepositoryRequest(instance_id="cri-a")).body
    assert [(r.repo_namespace_name, r.repo_name) for r in repos.repositories] == [("apps", "web"), ("base", "os")]
    ids = [r.repo_id for r in repos.repositories]
    assert ids[0] == "crr-" + hashlib.sha256(b"cri-a\x00apps\x00web").hexdigest()[:16]
    assert len(set(ids)) == 2
    # stable across calls
    assert [r.repo_id for r in client.list_repository(cr.ListRepositoryRequest(instance_id="cri-a")).body.repositories] == ids
    assert repos.repositories[0].repo_type == "PRIVATE"


def test_tags_get_and_delete(client, emulator):
    rid = repo_id(client, "apps", "web")
    body = client.list_repo_tag(cr.ListRepoTagRequest(instance_id="cri-a", repo_id=rid)).body
    assert (body.code, body.is_success, body.total_count, body.page_no, body.page_size) == ("success", True, "2", 1, 30)
    # newest first; sizes: v2 = 700 + 50 = 750, v1 = 700 + 300 = 1000; digests without the algorithm prefix
    assert [(i.tag, i.digest, i.image_size, i.image_update) for i in body.images] == [
        ("v2", "d2" * 32, 750, str(ms("2024-02-01"))),
        ("v1", "d1" * 32, 1000, str(ms("2024-01-01"))),
    ]
    one = client.get_repo_tag(cr.GetRepoTagRequest(instance_id="cri-a", repo_id=rid, tag="v1")).body
    assert (one.tag, one.digest, one.image_size, one.image_update, one.status) == ("v1", "d1" * 32, 1000, ms("2024-01-01"), "NORMAL")

    before = {o["key"] for o in emulator.objects("bucket-a")["current"]}
    deleted = client.delete_repo_tag(cr.DeleteRepoTagRequest(instance_id="cri-a", repo_id=rid, tag="v1")).body
    assert (deleted.code, deleted.is_success) == ("success", True)
    after = {o["key"] for o in emulator.objects("bucket-a")["current"]}
    # only the link goes; manifest and blobs wait for GC's sweep
    assert before - after == {"docker/registry/v2/repositories/apps/web/_manifests/tags/v1/current/link"}
    with pytest.raises(ClientException) as err:
        client.get_repo_tag(cr.GetRepoTagRequest(instance_id="cri-a", repo_id=rid, tag="v1"))
    assert (err.value.code, err.value.status_code) == ("TAG_NOT_EXIST", 404)
    assert emulator.truth()["instances"]["cri-a"]["tags"]["apps/web"] == ["v2"]
    with pytest.raises(ClientException) as err:
        client.list_repo_tag(cr.ListRepoTagRequest(instance_id="cri-a", repo_id="crr-doesnotexist"))
    assert (err.value.code, err.value.status_code) == ("REPO_NOT_EXIST", 404)


def test_lifecycle_rules(client):
    rules = client.list_artifact_lifecycle_rule(cr.ListArtifactLifecycleRuleRequest(instance_id="cri-a")).body
    assert rules.total_count == 2
    first, second = rules.rules
    assert (first.scope, first.namespace_name, first.retention_tag_count, first.tag_regexp, first.enable_delete_tag) == (
        "NAMESPACE", "apps", 5, "release-.*", True)
    assert (second.scope, second.retention_tag_count, second.enable_delete_tag, second.tag_regexp) == ("INSTANCE", 30, False, None)
    only_enabled = client.list_artifact_lifecycle_rule(
        cr.ListArtifactLifecycleRuleRequest(instance_id="cri-a", enable_delete_tag=True)).body
    assert [r.rule_id for r in only_enabled.rules] == [first.rule_id]
    got = client.get_artifact_lifecycle_rule(cr.GetArtifactLifecycleRuleRequest(instance_id="cri-a", rule_id=first.rule_id)).body
    assert (got.rule_id, got.scope, got.namespace_name, got.retention_tag_count) == (first.rule_id, "NAMESPACE", "apps", 5)


def test_build_source_and_sync(client):
    rid = repo_id(client, "apps", "web")
    build = client.list_repo_build_rule(cr.ListRepoBuildRuleRequest(instance_id="cri-a", repo_id=rid)).body
    assert build.total_count == "1"
    assert [(b.push_type, b.push_name, b.image_tag) for b in build.build_rules] == [("GIT_BRANCH", "main", "main-*")]
    src = client.get_repo_source_code_repo(cr.GetRepoSourceCodeRepoRequest(instance_id="cri-a", repo_id=rid)).body
    assert (src.code_repo_type, src.code_repo_namespace_name, src.code_repo_name) == ("GITHUB", "acme", "web")
    bare = client.get_repo_source_code_repo(
        cr.GetRepoSourceCodeRepoRequest(instance_id="cri-a", repo_id=repo_id(client, "base", "os"))).body
    assert bare.is_success and bare.code_repo_name is None
    sync = client.list_repo_sync_rule(cr.ListRepoSyncRuleRequest(instance_id="cri-a")).body
    assert sync.total_count == 1
    rule = sync.sync_rules[0]
    assert (rule.local_namespace_name, rule.local_repo_name, rule.target_instance_id, rule.target_region_id,
            rule.target_namespace_name, rule.target_repo_name) == ("apps", "web", "cri-b", "cn-shanghai", "mirror", "web")
    filtered = client.list_repo_sync_rule(cr.ListRepoSyncRuleRequest(instance_id="cri-a", namespace_name="base")).body
    assert filtered.total_count == 0 and filtered.sync_rules == []


def test_charts(client, emulator):
    ns = client.list_chart_namespace(cr.ListChartNamespaceRequest(instance_id="cri-a")).body
    assert [n.namespace_name for n in ns.namespaces] == ["base"]
    repos = client.list_chart_repository(cr.ListChartRepositoryRequest(instance_id="cri-a")).body
    assert [(r.repo_namespace_name, r.repo_name) for r in repos.repositories] == [("base", "app-chart")]
    assert {"key": "helm/base/app-chart/app-chart-1.0.0.tgz", "size": 1234} in [
        {"key": o["key"], "size": o["size"]} for o in emulator.objects("bucket-a")["current"]]


def test_gc_actions_via_call_api(client, gc_call, emulator):
    assert gc_call(client, "GetGarbageCollectionEnablement", InstanceId="cri-a") | {"RequestId": "x"} == {
        "RequestId": "x", "Code": "success", "IsSuccess": True, "InstanceId": "cri-a", "Enabled": True}
    task = gc_call(client, "CreateGarbageCollectionTask", InstanceId="cri-a")
    assert set(task) >= {"TaskId", "State", "Progress", "TagsDeleted", "ObjectsDeleted", "BytesDeleted",
                         "CreateTime", "FinishTime", "RequestId", "Code", "IsSuccess"}
    import time

    for _ in range(200):
        status = gc_call(client, "GetGarbageCollectionTask", InstanceId="cri-a", TaskId=task["TaskId"])
        if status["State"] == "SUCCESS":
            break
        time.sleep(0.02)
    # only the NAMESPACE apps rule applies (the INSTANCE rule has EnableDeleteTag false): it keeps 5 → nothing expires
    assert (status["State"], status["TagsDeleted"], status["ObjectsDeleted"], status["BytesDeleted"]) == ("SUCCESS", 0, 0, 0)
    listed = gc_call(client, "ListGarbageCollectionTask", InstanceId="cri-a")
    assert listed["TotalCount"] == 1 and listed["Tasks"][0]["TaskId"] == task["TaskId"]
    with pytest.raises(ClientException) as err:
        gc_call(client, "CancelGarbageCollectionTask", InstanceId="cri-a", TaskId=task["TaskId"])
    assert err.value.code == "GC_TASK_NOT_RUNNING"
    with pytest.raises(ClientException) as err:
        gc_call(client, "GetGarbageCollectionTask", InstanceId="cri-a", TaskId="gct-unknown")
    assert (err.value.code, err.value.status_code) == ("GC_TASK_NOT_EXIST", 404)
    assert emulator.truth()["instances"]["cri-a"]["gc_tasks"][0]["state"] == "SUCCESS"


def test_protocol_errors(client, gc_call):
    with pytest.raises(ClientException) as err:
        gc_call(client, "NoSuchAction", InstanceId="cri-a")
    assert (err.value.code, err.value.status_code) == ("InvalidAction.NotFound", 404)
    with pytest.raises(ClientException) as err:
        client.list_repo_tag(cr.ListRepoTagRequest(instance_id="cri-a"))
    assert (err.value.code, err.value.status_code) == ("MissingParameter", 400)
    assert "RepoId" in err.value.message
    assert set(err.value.data) >= {"RequestId", "HostId", "Code", "Message", "Recommend"}
