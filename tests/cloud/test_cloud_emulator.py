"""The ACR and OSS adapters against the real emulator (real SDKs, signing, wire formats).

Expectations come from the dataset written here (``emulator_dataset``) and from the
emulator's ground truth (``GET /_emulator/truth``), never from the adapters themselves.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import emulator_dataset as ds  # noqa: E402

from acr_gc.cloud import calls  # noqa: E402
from acr_gc.cloud.acr import AcrClient, pages_needed  # noqa: E402
from acr_gc.cloud.credentials import from_keys  # noqa: E402
from acr_gc.cloud.errors import AuthError, CloudError, NotFound  # noqa: E402
from acr_gc.cloud.oss import OssClient  # noqa: E402
from acr_gc.config import Api, Target  # noqa: E402
from emulator_kit import new_emulator  # noqa: E402

pytestmark = pytest.mark.slow

FAST = calls.Backoff(base_s=0.05, cap_s=1.0, floor_s=0.01)


@pytest.fixture(scope="module")
def emu():
    with new_emulator(ds.build(), seed=11) as e:
        yield e


@pytest.fixture
def fresh(emu):
    """A clean emulator state and fault-free settings before (and after) the test."""
    emu.reset()
    emu.set_faults(fault_rate=0, qps=0, latency_ms=0)
    calls.reset_limiters()
    yield emu
    emu.set_faults(fault_rate=0, qps=0, latency_ms=0)


def target(emu) -> Target:
    return Target(instance_id=ds.INSTANCE, bucket=ds.BUCKET, acr_endpoint=emu.acr_endpoint,
                  oss_endpoint=emu.oss_endpoint)


def clients(emu, api: Api | None = None, secret: str = ds.AK_SECRET):
    api = api or Api(qps=1000, retries=4, timeout_s=10)
    creds = from_keys(ds.AK_ID, secret)
    return (AcrClient(target(emu), api, credentials=creds, backoff=FAST),
            OssClient(target(emu), api, credentials=creds, backoff=FAST))


def repo_map(acr: AcrClient):
    return {r.full_name: r for r in acr.list_repositories()}


# ---------------------------------------------------------------- ACR reads


def test_acr_reads_match_the_dataset(fresh):
    acr, _ = clients(fresh)
    inst = acr.get_instance()
    assert (inst.instance_id, inst.name, inst.region) == (ds.INSTANCE, "cloud-test", "cn-hangzhou")
    assert {i.instance_id for i in acr.list_instances()} == {ds.INSTANCE, ds.OTHER_INSTANCE}
    assert {n.name for n in acr.list_namespaces()} == {"app", "lib", "bulk", "charts"}

    repos = repo_map(acr)
    assert set(repos) == set(ds.REPO_SIZES) | set(ds.EXTRA_REPOS)
    assert len({r.repo_id for r in repos.values()}) == len(repos)
    usage = acr.get_instance_usage()
    assert usage.repo_usage == len(repos) and usage.namespace_usage == 4

    truth = fresh.truth()["instances"][ds.INSTANCE]["tags"]
    for full in ds.REPO_SIZES:
        tags = acr.list_repo_tags(repos[full].repo_id, resource=full)
        got = sorted((t.tag, t.digest, t.updated) for t in tags)
        assert got == sorted(ds.expected_tags(full)), full
        assert sorted(t.tag for t in tags) == sorted(truth[full])
        for t in tags:
            i = int(t.tag[1:])
            assert t.image_size == ds.expected_image_size(full, i)
            assert t.updated.tzinfo is not None and t.updated.utcoffset().total_seconds() == 0
    one = repos["app/one"]
    tag = acr.get_repo_tag(one.repo_id, "v0", resource="app/one")
    assert (tag.tag, tag.digest) == ("v0", ds.digest("app/one:0"))
    with pytest.raises(NotFound) as info:
        acr.get_repo_tag(one.repo_id, "nope", resource="app/one")
    assert str(info.value).startswith(f"ACR GetRepoTag on {ds.INSTANCE}/app/one:nope failed: TAG_NOT_EXIST (404)")


def test_acr_rules_sources_and_charts(fresh):
    acr, _ = clients(fresh)
    rules = sorted(acr.list_lifecycle_rules(), key=lambda r: r.scope)
    assert [(r.scope, r.namespace, r.repo, r.retention_tag_count, r.tag_regexp, r.enable_delete_tag)
            for r in rules] == [("NAMESPACE", "lib", None, None, "v0", False),
                                ("REPO", "app", "hundred", 10, None, True)]
    assert acr.get_lifecycle_rule(rules[1].rule_id) == rules[1]

    repos = repo_map(acr)
    base = repos["lib/base"].repo_id
    assert [(b.push_type, b.push_name, b.image_tag) for b in acr.list_build_rules(base)] == [
        ("GIT_BRANCH", "main", "v*")]
    src = acr.get_source_code_repo(base)
    assert (src.code_repo_type, src.code_repo_namespace, src.code_repo_name) == ("GITHUB", "acme", "base")
    assert acr.get_source_code_repo(repos["app/one"].repo_id) is None
    assert acr.list_build_rules(repos["app/one"].repo_id) == []
    syncs = acr.list_sync_rules("lib", "base")
    assert [(s.target_instance_id, s.target_namespace, s.target_repo) for s in syncs] == [
        (ds.OTHER_INSTANCE, "lib", "base")]
    assert acr.list_sync_rules("app") == []
    assert [c.name for c in acr.list_chart_namespaces()] == ["charts"]
    assert [(c.namespace, c.name) for c in acr.list_chart_repositories()] == [("charts", "web")]
    with pytest.raises(NotFound):
        acr.list_repo_tags("crr-doesnotexist")


@pytest.mark.parametrize("full", list(ds.REPO_SIZES))
@pytest.mark.parametrize("page_size", [ds.SMALL_PAGE, 100])
def test_paging_is_exact(fresh, full, page_size):
    acr, _ = clients(fresh)
    repo_id = repo_map(acr)[full].repo_id
    before = calls.stats()
    pages = list(acr.iter_repo_tag_pages(repo_id, page_size=page_size))
    after = calls.stats()
    total = ds.REPO_SIZES[full]
    assert after.attempts - before.attempts == pages_needed(total, page_size)
    assert [len(p.items) for p in pages] == (
        [min(page_size, total - i) for i in range(0, total, page_size)] or [0])
    assert all(p.total_count == total for p in pages)
    tags = [t.tag for p in pages for t in p.items]
    assert len(tags) == len(set(tags)) == total


def test_repository_paging_over_many_pages(fresh):
    acr, _ = clients(fresh)
    total = len(ds.REPO_SIZES) + len(ds.EXTRA_REPOS)  # 108: two pages of 100, sixteen of 7
    for size in (100, ds.SMALL_PAGE):
        before = calls.stats()
        repos = acr.list_repositories(page_size=size)
        assert calls.stats().attempts - before.attempts == pages_needed(total, size)
        assert len({r.full_name for r in repos}) == total
    assert {r.name for r in acr.list_repositories("bulk")} == {r.split("/")[1] for r in ds.EXTRA_REPOS}


def test_repository_pages_after_the_first_are_requested_together(fresh):
    """Issue 16: the tag listing waits for the repository listing, so with ``parallel`` its
    pages after the first are in flight at once. Seen at the emulator: with ListRepository
    held after one request, sequential paging has one request held at a time, parallel
    paging has every remaining page held together. Same pages, same items as one by one."""
    import threading

    acr, _ = clients(fresh)
    total = len(ds.REPO_SIZES) + len(ds.EXTRA_REPOS)
    size = ds.SMALL_PAGE
    pages = pages_needed(total, size)
    expected = [r.full_name for r in acr.list_repositories(page_size=size)]  # one by one, no hold
    fresh.set_faults(hold={"action": "ListRepository", "skip": 1})
    found: list = []
    before = calls.stats().attempts
    worker = threading.Thread(target=lambda: found.extend(
        r for page in acr.iter_repository_pages(page_size=size, parallel=pages) for r in page.items))
    worker.start()
    deadline = time.monotonic() + 60
    while fresh.set_faults()["held"] < pages - 1:
        assert worker.is_alive() and time.monotonic() < deadline, fresh.set_faults()
        time.sleep(0.05)
    fresh.set_faults(hold=None)
    worker.join(60)
    assert not worker.is_alive()
    assert calls.stats().attempts - before == pages
    assert [r.full_name for r in found] == expected and len(expected) == total


def test_a_burst_as_wide_as_the_quota_keeps_its_connections(fresh, caplog):
    """The limiter lets ``qps`` calls start together at the top of a window: with 60 of
    them in flight at once (held at the emulator, then let go together), the SDK's pool
    keeps every connection instead of discarding the surplus with one urllib3 warning each
    (a plan printed ~150 "Connection pool is full" lines on 600 repositories at 100 qps)."""
    import logging
    import threading

    wide = 60
    acr, _ = clients(fresh, Api(qps=wide, concurrency=4, retries=0, timeout_s=30))
    acr.get_instance()  # the SDK imported once, before the threads
    fresh.set_faults(hold={"action": "GetInstance", "skip": 0})
    results: list = []
    workers = [threading.Thread(target=lambda: results.append(acr.get_instance())) for _ in range(wide)]
    with caplog.at_level(logging.WARNING, logger="urllib3"):
        for worker in workers:
            worker.start()
        deadline = time.monotonic() + 60
        while fresh.set_faults()["held"] < wide:
            assert time.monotonic() < deadline, fresh.set_faults()
            time.sleep(0.05)
        fresh.set_faults(hold=None)
        for worker in workers:
            worker.join(60)
    assert len(results) == wide and {r.instance_id for r in results} == {ds.INSTANCE}
    discarded = [r.getMessage() for r in caplog.records if "pool is full" in r.getMessage()]
    assert discarded == []


# ---------------------------------------------------------------- OSS


def test_oss_reads_match_the_truth(fresh):
    _, oss = clients(fresh)
    truth = fresh.truth()["buckets"][ds.BUCKET]
    stat = oss.bucket_stat()
    assert (stat.storage_bytes, stat.object_count) == (truth["storage_bytes"], truth["objects"])
    objects = oss.list_objects()
    assert len(objects) == truth["live_objects"]
    assert sum(o.size for o in objects) == truth["live_bytes"]
    assert len({o.key for o in objects}) == len(objects)
    assert oss.list_objects(max_keys=100) == objects  # many pages, same listing
    assert oss.get_versioning() == "Enabled"
    assert [(r.id, r.prefix, r.status, r.expiration_days, r.noncurrent_days) for r in oss.get_lifecycle()] == [
        ("noncurrent", "docker/", "Enabled", None, 3)]
    assert oss.get_policy() is None
    info = oss.bucket_info()
    assert (info.name, info.versioning) == (ds.BUCKET, "Enabled")

    shanghai = Target(instance_id=ds.OTHER_INSTANCE, bucket=ds.OTHER_BUCKET, region="cn-shanghai",
                      acr_endpoint=fresh.acr_endpoint, oss_endpoint=fresh.oss_endpoint)
    other = OssClient(shanghai, oss.api, credentials=from_keys(ds.AK_ID, ds.AK_SECRET))
    assert other.get_versioning() is None
    assert other.get_lifecycle() == []
    assert other.list_objects() == []
    assert other.bucket_stat().object_count == 0


def test_oss_objects_and_policy_round_trip(fresh):
    _, oss = clients(fresh)
    before = fresh.truth()["buckets"][ds.BUCKET]
    data = bytes(range(256)) * 10
    oss.put_object("test/blob.bin", data)
    assert oss.get_object("test/blob.bin").data == data
    assert oss.head_object("test/blob.bin").size == len(data)
    mid = fresh.truth()["buckets"][ds.BUCKET]
    assert mid["live_bytes"] == before["live_bytes"] + len(data)
    assert oss.bucket_stat().storage_bytes == mid["storage_bytes"]
    oss.delete_object("test/blob.bin")
    with pytest.raises(NotFound):
        oss.head_object("test/blob.bin")
    with pytest.raises(NotFound) as info:
        oss.get_object("test/blob.bin")
    assert info.value.code == "NoSuchKey"

    policy = {"Version": "1", "Statement": [{
        "Sid": "acr-gc-freeze-test", "Effect": "Deny", "Principal": ["*"],
        "Action": ["oss:PutObject", "oss:DeleteObject"],
        "Resource": [f"acs:oss:*:*:{ds.BUCKET}/*"]}]}
    oss.put_policy(policy)
    assert oss.get_policy() == policy
    assert fresh.truth()["buckets"][ds.BUCKET]["policy"] == policy
    oss.delete_policy()
    assert oss.get_policy() is None
    oss.delete_policy()  # again: nothing to delete is fine


# ---------------------------------------------------------------- GC actions


def test_gc_actions(fresh):
    acr, _ = clients(fresh)
    assert acr.gc_enablement() is True
    assert acr.gc_list() == []
    task_id = acr.gc_create()
    status = acr.gc_get(task_id)
    assert status.task_id == task_id and status.state in ("PENDING", "RUNNING", "SUCCESS")
    deadline = time.monotonic() + 60
    while status.active and time.monotonic() < deadline:
        time.sleep(0.2)
        status = acr.gc_get(task_id)
    assert status.state == "SUCCESS"
    truth = fresh.truth()["instances"][ds.INSTANCE]
    assert [(t["task_id"], t["state"], t["tags_deleted"], t["bytes_deleted"]) for t in truth["gc_tasks"]] == [
        (task_id, "SUCCESS", status.tags_deleted, status.bytes_deleted)]
    assert status.tags_deleted == 90  # app/hundred keeps its 10 newest; lib's rule deletes nothing
    assert len(truth["tags"]["app/hundred"]) == 10
    assert [t.task_id for t in acr.gc_list()] == [task_id]
    repo_id = repo_map(acr)["app/hundred"].repo_id
    assert len(acr.list_repo_tags(repo_id)) == 10
    with pytest.raises(CloudError):
        acr.gc_get("gc-doesnotexist")


def test_gc_cancel(fresh):
    fresh.set_faults(latency_ms=0)
    acr, _ = clients(fresh)
    task_id = acr.gc_create()
    acr.gc_cancel(task_id)
    deadline = time.monotonic() + 30
    status = acr.gc_get(task_id)
    while status.active and time.monotonic() < deadline:
        time.sleep(0.1)
        status = acr.gc_get(task_id)
    assert status.state in ("CANCELED", "SUCCESS")  # it may have finished before the cancel arrived
    assert fresh.truth()["instances"][ds.INSTANCE]["gc_tasks"][0]["state"] == status.state


def test_delete_repo_tag(fresh):
    acr, _ = clients(fresh)
    repo_id = repo_map(acr)["app/seven"].repo_id
    assert acr.delete_repo_tag(repo_id, "v3", resource="app/seven") is True
    assert acr.delete_repo_tag(repo_id, "v3", resource="app/seven") is False
    assert "v3" not in fresh.truth()["instances"][ds.INSTANCE]["tags"]["app/seven"]


# ---------------------------------------------------------------- faults and auth


def full_listing(acr: AcrClient, oss: OssClient, workers: int = 8) -> dict:
    """Everything the inventory reads, tag listings fanned out over a thread pool."""
    from concurrent.futures import ThreadPoolExecutor

    repos = repo_map(acr)
    names = list(ds.REPO_SIZES) + ds.EXTRA_REPOS[:40]

    def tags(full):
        return full, sorted((t.tag, t.digest, t.image_size, t.updated)
                            for t in acr.list_repo_tags(repos[full].repo_id, page_size=ds.SMALL_PAGE))

    with ThreadPoolExecutor(workers) as pool:
        all_tags = dict(pool.map(tags, names))
    return {
        "repos": sorted(repos),
        "tags": all_tags,
        "rules": sorted((r.rule_id, r.scope) for r in acr.list_lifecycle_rules()),
        "objects": sorted((o.key, o.size) for o in oss.list_objects(max_keys=200)),
        "stat": (lambda s: (s.storage_bytes, s.object_count))(oss.bucket_stat()),
        "lifecycle": oss.get_lifecycle(),
    }


def test_complete_results_under_throttling_and_faults(fresh):
    acr, oss = clients(fresh, Api(qps=1000, retries=4, timeout_s=10))
    clean = full_listing(acr, oss)

    fresh.set_faults(qps=20, fault_rate=0.2, seed=5)
    # the client allows more than the server: the server's throttling must be absorbed by retries
    acr, oss = clients(fresh, Api(qps=40, retries=12, timeout_s=10))
    before = calls.stats()
    faulty = full_listing(acr, oss)
    after = calls.stats()
    truth = fresh.truth()
    print(f"faulty listing: {after.calls - before.calls} calls, {after.attempts - before.attempts} attempts, "
          f"{after.retries - before.retries} retries ({after.throttled_retries - before.throttled_retries} "
          f"throttled); emulator fault counts {truth['fault_counts']}")

    assert faulty == clean
    assert after.retries - before.retries > 0
    assert after.throttled_retries - before.throttled_retries > 0
    assert after.failures == before.failures
    counts = truth["fault_counts"]
    injected = sum(v for k, v in counts.items() if not k.endswith("throttled"))
    assert injected > 0 and any(k.endswith("throttled") for k in counts)
    # every retried attempt is one the emulator faulted or throttled (none lost, none invented)
    assert after.retries - before.retries == sum(counts.values())


def test_wrong_secret_is_an_auth_error_in_one_clean_line(fresh):
    wrong = "definitely-not-the-secret-9Qw2"
    acr, oss = clients(fresh, secret=wrong)
    with pytest.raises(AuthError) as info:
        acr.list_namespaces()
    text = str(info.value)
    assert text.startswith(f"ACR ListNamespace on {ds.INSTANCE} failed: ")
    assert "\n" not in text and wrong not in text and ds.AK_SECRET not in text and wrong not in repr(info.value)
    assert info.value.attempts == 1
    with pytest.raises(AuthError) as info:
        oss.bucket_stat()
    text = str(info.value)
    assert text.startswith(f"OSS GetBucketStat on {ds.BUCKET} failed: ")
    assert "\n" not in text and wrong not in text and ds.AK_SECRET not in text

    unknown = AcrClient(target(fresh), Api(qps=1000), credentials=from_keys("LTAIunknownkey", ds.AK_SECRET))
    with pytest.raises(AuthError) as info:
        unknown.get_instance()
    assert "InvalidAccessKeyId" in info.value.code
