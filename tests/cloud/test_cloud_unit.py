"""Cloud adapters against a tiny real HTTP server with canned answers (no emulator needed).

The real SDK clients sign, send and parse; the server plays each failure mode so that the
error classification is checked on the exceptions the SDK really raises.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from canned_server import CannedServer  # noqa: E402
from http_kit import LoopbackHttpServer  # noqa: E402

from acr_gc.cloud import calls  # noqa: E402
from acr_gc.cloud.acr import AcrClient, normalize_digest, pages_needed, parse_time  # noqa: E402
from acr_gc.cloud.credentials import AlibabaCloudCredentials, from_keys  # noqa: E402
from acr_gc.cloud.errors import (  # noqa: E402
    AuthError,
    CloudError,
    Forbidden,
    NotFound,
    Throttled,
    Unavailable,
    classify_code,
    redact,
)
from acr_gc.cloud.oss import OssClient  # noqa: E402
from acr_gc.config import Api, Target  # noqa: E402

SECRET = "unit-secret-Hq3vN8sK2mP5"
TOKEN = "unit-sts-token-Xy7Wq2Lk9Rt4"
J = {"Content-Type": "application/json;charset=utf-8"}
X = {"Content-Type": "application/xml"}
FAST = calls.Backoff(base_s=0.01, cap_s=0.05, floor_s=0.0)


@pytest.fixture(scope="module")
def server():
    with CannedServer() as s:
        yield s


@pytest.fixture
def api():
    """Timeouts far above any answer's time, also on a machine far over its cores (a worker
    thread can wait a second for the CPU): only SLOW steps are meant to time out."""
    return Api(qps=1000, retries=3, timeout_s=10.0, concurrency=4)


SLOW = ("slow", 1.5, (200, J, "{}"))  # answered after 1.5 s: past SLOW_API's timeout
SLOW_API = Api(qps=1000, retries=3, timeout_s=0.5, concurrency=4)


@pytest.fixture
def acr(server, api):
    target = Target(instance_id="cri-unit", bucket="unit-bucket", acr_endpoint=server.endpoint,
                    oss_endpoint=server.endpoint)
    return AcrClient(target, api, credentials=from_keys("AKIDUNIT", SECRET), backoff=FAST)


@pytest.fixture
def oss(server, api):
    target = Target(instance_id="cri-unit", bucket="unit-bucket", acr_endpoint=server.endpoint,
                    oss_endpoint=server.endpoint)
    return OssClient(target, api, credentials=from_keys("AKIDUNIT", SECRET), backoff=FAST)


def acr_error(status, code, message="boom", request_id="RID-1"):
    return (status, J, json.dumps({"Code": code, "Message": message, "RequestId": request_id}))


def oss_error(status, code, message="boom", request_id="RID-2"):
    body = (f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code><Message>{message}</Message>"
            f"<RequestId>{request_id}</RequestId></Error>")
    return (status, X, body)


def tag_page(tags, total):
    images = [{"Tag": t, "Digest": "ab" * 32, "ImageSize": 5, "ImageUpdate": 1_700_000_000_000 + i,
               "ImageId": "id"} for i, t in enumerate(tags)]
    return (200, J, json.dumps({"IsSuccess": True, "Images": images, "TotalCount": str(total)}))


def delta(before: calls.CallStats) -> calls.CallStats:
    now = calls.stats()
    return calls.CallStats(now.calls - before.calls, now.attempts - before.attempts, now.retries - before.retries,
                           now.throttled_retries - before.throttled_retries, now.failures - before.failures)


# ---------------------------------------------------------------- error classification


@pytest.mark.parametrize(
    "step, error_type, code, attempts",
    [
        (acr_error(404, "REPO_NOT_EXIST", "repo not exist"), NotFound, "REPO_NOT_EXIST", 1),
        (acr_error(400, "Throttling.User", "flow control"), Throttled, "Throttling.User", 4),
        (acr_error(503, "ServiceUnavailable"), Unavailable, "ServiceUnavailable", 4),
        (acr_error(500, "InternalError"), Unavailable, "InternalError", 4),
        (acr_error(401, "InvalidAccessKeyId.NotFound", "Specified access key is not found."), AuthError,
         "InvalidAccessKeyId.NotFound", 1),
        (acr_error(400, "SignatureDoesNotMatch"), AuthError, "SignatureDoesNotMatch", 1),
        (acr_error(400, "IncompleteSignature"), AuthError, "IncompleteSignature", 1),
        (acr_error(403, "Forbidden.RAM"), Forbidden, "Forbidden.RAM", 1),
        (acr_error(400, "PARAM_INVALID", "bad page"), CloudError, "PARAM_INVALID", 1),
        ("drop", Unavailable, "ConnectionError", 4),
        ("cut", Unavailable, "ConnectionError", 4),
        (SLOW, Unavailable, "ReadTimeout", 4),
        ((200, J, json.dumps({"IsSuccess": False, "Code": "TAG_NOT_EXIST", "Message": "no tag"})), NotFound,
         "TAG_NOT_EXIST", 1),
    ],
)
def test_acr_errors_are_classified_and_retried_only_when_transient(server, acr, step, error_type, code, attempts):
    if step is SLOW:
        acr.api = SLOW_API
    server.set_script([step])
    before = calls.stats()
    with pytest.raises(CloudError) as info:
        acr.get_repo_tag("crr-1", "v1", resource="ns/repo")
    err = info.value
    assert type(err) is error_type
    assert err.code == code
    assert len(server.requests) == attempts  # 4 = api.retries (3) + 1; 4xx other than throttling: once
    d = delta(before)
    assert d.attempts == attempts and d.retries == attempts - 1 and d.failures == 1
    assert d.throttled_retries == (attempts - 1 if error_type is Throttled else 0)
    text = str(err)
    assert "\n" not in text
    assert text.startswith("ACR GetRepoTag on cri-unit/ns/repo:v1 failed")
    assert code in text
    assert SECRET not in text and SECRET not in repr(err)


def test_error_line_shape(server, acr):
    server.set_script([acr_error(404, "REPO_NOT_EXIST", "The repository crr-9 does not exist.", "4F2A")])
    with pytest.raises(NotFound) as info:
        acr.list_repo_tags("crr-9", resource="ns/repo")
    assert str(info.value) == (
        "ACR ListRepoTag on cri-unit/ns/repo failed: REPO_NOT_EXIST (404): "
        "The repository crr-9 does not exist. [request 4F2A]"
    )
    err = info.value
    assert (err.service, err.action, err.resource, err.http_status, err.request_id) == (
        "ACR", "ListRepoTag", "cri-unit/ns/repo", 404, "4F2A")


def test_transient_failures_then_success_return_the_result(server, acr):
    acr.api = Api(qps=1000, retries=5, timeout_s=10.0)
    server.set_script(["drop", acr_error(400, "Throttling.User"), acr_error(503, "ServiceUnavailable"), "cut",
                       tag_page(["a"], 1)])
    before = calls.stats()
    tags = acr.list_repo_tags("crr-1")
    assert [t.tag for t in tags] == ["a"]
    d = delta(before)
    assert d.calls == 1 and d.attempts == 5 and d.retries == 4 and d.throttled_retries == 1 and d.failures == 0


def test_non_idempotent_call_is_not_retried_after_an_ambiguous_failure(server, acr):
    server.set_script(["cut"])  # the server may have created the task before the answer was cut
    with pytest.raises(Unavailable):
        acr.gc_create()
    assert len(server.requests) == 1
    server.set_script([acr_error(503, "ServiceUnavailable"), (200, J, json.dumps({"TaskId": "gc-1"}))])
    assert acr.gc_create() == "gc-1"  # an explicit 5xx answer is safe to retry
    assert len(server.requests) == 2


def test_retries_zero_means_one_attempt(server, acr, api):
    acr.api = Api(qps=1000, retries=0, timeout_s=10.0)
    server.set_script([acr_error(503, "ServiceUnavailable")])
    with pytest.raises(Unavailable) as info:
        acr.get_instance()
    assert len(server.requests) == 1
    assert "after" not in str(info.value)


def test_refused_connection_is_unavailable_and_names_the_call(api):
    target = Target(instance_id="cri-x", bucket="b", acr_endpoint="127.0.0.1:9", oss_endpoint="127.0.0.1:9")
    client = AcrClient(target, Api(qps=1000, retries=1, timeout_s=1), credentials=from_keys("AK", SECRET),
                       backoff=FAST)
    with pytest.raises(Unavailable) as info:
        client.list_namespaces()
    assert str(info.value).startswith("ACR ListNamespace on cri-x failed after 2 attempts: ConnectionRefused")


@pytest.mark.parametrize(
    "step, error_type, code, attempts",
    [
        (oss_error(503, "TotalQpsLimitExceeded"), Throttled, "TotalQpsLimitExceeded", 4),
        (oss_error(503, "ServiceUnavailable"), Unavailable, "ServiceUnavailable", 4),
        (oss_error(403, "InvalidAccessKeyId", "The OSS Access Key Id you provided does not exist."), AuthError,
         "InvalidAccessKeyId", 1),
        (oss_error(403, "SignatureDoesNotMatch"), AuthError, "SignatureDoesNotMatch", 1),
        (oss_error(403, "AccessDenied", "denied by bucket policy"), Forbidden, "AccessDenied", 1),
        (oss_error(404, "NoSuchBucket"), NotFound, "NoSuchBucket", 1),
        ("drop", Unavailable, "ConnectionError", 4),
    ],
)
def test_oss_errors_are_classified(server, oss, step, error_type, code, attempts):
    server.set_script([step])
    with pytest.raises(CloudError) as info:
        oss.bucket_stat()
    assert type(info.value) is error_type
    assert info.value.code == code
    assert len(server.requests) == attempts
    assert str(info.value).startswith("OSS GetBucketStat on unit-bucket failed")


def test_oss_absent_configuration_is_not_an_error(server, oss):
    server.set_script([oss_error(404, "NoSuchLifecycle")])
    assert oss.get_lifecycle() == []
    server.set_script([oss_error(404, "NoSuchBucketPolicy")])
    assert oss.get_policy() is None
    server.set_script([oss_error(404, "NoSuchBucketPolicy")])
    oss.delete_policy()  # idempotent
    server.set_script([(404, {}, b"")])
    with pytest.raises(NotFound) as info:
        oss.head_object("missing/key")
    assert info.value.code == "NoSuchKey"
    assert str(info.value).startswith("OSS HeadObject on unit-bucket/missing/key failed: NoSuchKey (404)")


def test_oss_requests_are_path_style_and_parsed(server, oss):
    server.set_script([(200, X, "<?xml version='1.0'?><BucketStat><Storage>1234</Storage>"
                                "<ObjectCount>7</ObjectCount></BucketStat>")])
    stat = oss.bucket_stat()
    assert (stat.storage_bytes, stat.object_count) == (1234, 7)
    assert stat.taken_at.tzinfo is not None
    assert server.requests[-1]["path"].startswith("/unit-bucket/?stat")
    server.set_script([(200, {"ETag": '"E1"'}, "")])
    assert oss.put_object("a/b c.txt", b"payload") == "E1"
    assert server.requests[-1]["method"] == "PUT" and server.requests[-1]["body"] == b"payload"
    server.set_script([(200, {}, "")])
    oss.put_policy({"Version": "1", "Statement": [{"Effect": "Deny"}]})
    assert json.loads(server.requests[-1]["body"]) == {"Version": "1", "Statement": [{"Effect": "Deny"}]}


def test_oss_list_objects_follows_markers(server, oss):
    page1 = ("<?xml version='1.0'?><ListBucketResult><IsTruncated>true</IsTruncated><NextMarker>k2</NextMarker>"
             "<Contents><Key>k1</Key><Size>1</Size></Contents><Contents><Key>k2</Key><Size>2</Size></Contents>"
             "</ListBucketResult>")
    page2 = ("<?xml version='1.0'?><ListBucketResult><IsTruncated>false</IsTruncated>"
             "<Contents><Key>k3</Key><Size>3</Size></Contents></ListBucketResult>")
    server.set_script([(200, X, page1), (200, X, page2)])
    objects = oss.list_objects(max_keys=2)
    assert [(o.key, o.size) for o in objects] == [("k1", 1), ("k2", 2), ("k3", 3)]
    assert "marker=k2" in server.requests[1]["path"]


def test_classify_code_table():
    assert classify_code("Throttling", 400) == "throttled"
    assert classify_code("Throttling.Api", 503) == "throttled"
    assert classify_code("TotalQpsLimitExceeded", 503) == "throttled"
    assert classify_code("ServiceUnavailable", 503) == "server"
    assert classify_code("InvalidAccessKeyId.Inactive", 400) == "auth"
    assert classify_code("InvalidSecurityToken.Expired", 400) == "auth"
    assert classify_code("NoSuchKey", 404) == "not_found"
    assert classify_code("PARAM_INVALID", 400) == "client"
    assert classify_code("AccessDenied", 403) == "forbidden"
    assert classify_code(None, 429) == "throttled"


# ---------------------------------------------------------------- paging


@pytest.mark.parametrize("total", [0, 1, 3, 4, 7])
def test_paging_stops_exactly_at_total_count(server, acr, total):
    size = 3
    pages = []
    names = [f"t{i}" for i in range(total)]
    for start in range(0, max(total, 1), size):
        pages.append(tag_page(names[start:start + size], total))
    pages.append(acr_error(500, "ShouldNotBeCalled"))  # a request past the end would fail the test
    server.set_script(pages)
    tags = acr.list_repo_tags("crr-1", page_size=size)
    assert [t.tag for t in tags] == names
    assert len(server.requests) == pages_needed(total, size) == max(1, -(-total // size))
    assert [r["path"].split("PageNo=")[1].split("&")[0] for r in server.requests] == [
        str(i + 1) for i in range(len(server.requests))]


def test_paging_stops_on_an_empty_page_when_the_set_shrinks(server, acr):
    server.set_script([tag_page(["a", "b"], 5), tag_page([], 3), acr_error(500, "ShouldNotBeCalled")])
    assert [t.tag for t in acr.list_repo_tags("crr-1", page_size=2)] == ["a", "b"]
    assert len(server.requests) == 2


def test_page_iterator_reports_each_page(server, acr):
    server.set_script([tag_page(["a", "b"], 3), tag_page(["c"], 3)])
    pages = list(acr.iter_repo_tag_pages("crr-1", page_size=2))
    assert [(p.page_no, p.page_size, p.total_count, [t.tag for t in p.items]) for p in pages] == [
        (1, 2, 3, ["a", "b"]), (2, 2, 3, ["c"])]


def test_page_size_bounds(acr):
    with pytest.raises(ValueError):
        acr.list_repo_tags("crr-1", page_size=101)
    with pytest.raises(ValueError):
        acr.list_repo_tags("crr-1", page_size=0)


def test_wire_value_parsing():
    assert parse_time(1_700_000_000_000).isoformat() == "2023-11-14T22:13:20+00:00"
    assert parse_time("1700000000000").isoformat() == "2023-11-14T22:13:20+00:00"
    assert parse_time("2023-11-14T22:13:20Z").isoformat() == "2023-11-14T22:13:20+00:00"
    assert parse_time("2023-11-15T06:13:20+08:00").isoformat() == "2023-11-14T22:13:20+00:00"
    assert normalize_digest("ab" * 32) == "sha256:" + "ab" * 32
    assert normalize_digest("sha256:" + "ab" * 32) == "sha256:" + "ab" * 32


# ---------------------------------------------------------------- rate limit and backoff


def test_backoff_is_exponential_with_jitter_and_capped():
    import random

    b = calls.Backoff(base_s=0.5, cap_s=4.0, floor_s=0.0)
    rng = random.Random(1)
    for n in range(1, 10):
        ceiling = min(4.0, 0.5 * 2 ** (n - 1))
        samples = [b.delay(n, rng=rng) for _ in range(200)]
        assert all(ceiling / 2 <= s <= ceiling for s in samples)  # half certain, half jitter
        assert max(samples) > ceiling * 0.8  # really spread up to the ceiling (jitter)
        assert len(set(samples)) > 150
    assert b.delay(1, retry_after_s=3.0, rng=rng) >= 3.0  # Retry-After honoured (capped)
    assert b.delay(1, retry_after_s=30.0, rng=rng) <= 4.0


def test_default_retries_always_span_a_six_second_outage():
    """The retries of one call outlast an outage shorter than the sum of the certain
    halves: 0.1 + 0.2 + 0.4 + 0.8 + 1.6 + 3.2 = 6.3 s for 6 retries at the defaults."""
    import random

    rng = random.Random(3)
    backoff, retries = calls.DEFAULT_BACKOFF, Api().retries
    spans = [sum(backoff.delay(n, rng=rng) for n in range(1, retries + 1)) for _ in range(2000)]
    assert retries == 6
    assert min(spans) >= 6.3 - 1e-9
    assert max(spans) <= 12.6 + 1e-9


def test_shared_rate_limiter_holds_the_process_to_qps_across_threads(server):
    calls.reset_limiters()
    qps = 20
    api = Api(qps=qps, retries=0, timeout_s=10)
    target = Target(instance_id="cri-unit", bucket="b", acr_endpoint=server.endpoint, oss_endpoint=server.endpoint)
    creds = from_keys("AKIDUNIT", SECRET)
    clients = [AcrClient(target, api, credentials=creds) for _ in range(2)]  # two clients share one limiter
    server.set_script([(200, J, json.dumps({"InstanceId": "cri-unit", "InstanceName": "u"}))])
    for client in clients:  # warm: a client's first call is slow, and would spread the first burst's arrivals
        client.get_instance()
    calls.reset_limiters()
    server.requests.clear()
    n = 50

    def worker(i):
        clients[i % 2].get_instance()

    start = time.monotonic()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - start
    # a sliding window of 20 per second: 50 calls need at least two full windows
    assert elapsed >= (n - qps) / qps * 0.95, elapsed
    assert len(server.requests) == n
    stamps = sorted(r["t"] for r in server.requests)
    # Within k seconds of `start` the limiter lets at most k * qps calls go (the (k*qps+1)-th
    # waits a full second after the ((k-1)*qps+1)-th, which went no earlier than `start`).
    # A loaded machine only delays a call between the limiter and the server, so counting
    # arrivals before start + k holds on any machine (windows between arrivals did not: a
    # late call from one second and the next second's calls arrived together, 23 in 0.5 s).
    for k in range(1, int(elapsed) + 2):
        arrived = sum(1 for t in stamps if t < start + k - 0.01)
        assert arrived <= k * qps, (k, arrived, [round(t - start, 3) for t in stamps])
    assert elapsed < 10


def test_rate_for_fractional_qps():
    r = calls._rate_for(0.5)
    assert (r.limit, r.interval) == (1, 2000)
    r = calls._rate_for(50)
    assert (r.limit, r.interval) == (50, 1000)


def test_endpoint_detection():
    assert calls.is_loopback_or_ip("127.0.0.1:9101")
    assert calls.is_loopback_or_ip("localhost:9101")
    assert calls.is_loopback_or_ip("[::1]:9101")
    assert not calls.is_loopback_or_ip("cr.cn-hangzhou.aliyuncs.com")
    assert not calls.is_loopback_or_ip("oss-cn-hangzhou.aliyuncs.com")
    t = Target(instance_id="cri-x", bucket="b")
    creds = from_keys("AK", SECRET)
    assert AcrClient(t, credentials=creds).protocol == "HTTPS"
    o = OssClient(t, credentials=creds)
    assert (o.protocol, o.path_style, o.endpoint) == ("HTTPS", False, "oss-cn-hangzhou.aliyuncs.com")
    t2 = Target(instance_id="cri-x", bucket="b", acr_endpoint="127.0.0.1:1", oss_endpoint="127.0.0.1:2")
    assert AcrClient(t2, credentials=creds).protocol == "HTTP"
    assert OssClient(t2, credentials=creds).path_style


# ---------------------------------------------------------------- secrets


def test_no_secret_in_any_repr_or_error(server, acr, oss, caplog):
    import logging

    caplog.set_level(logging.DEBUG)
    block = AlibabaCloudCredentials(access_key_id="AKIDUNIT", access_key_secret=SECRET, security_token=TOKEN)
    creds = from_keys("AKIDUNIT", SECRET, TOKEN)
    objects = [block, creds, creds.credential, acr, oss, block.model_dump(), block.model_dump_json()]
    for obj in objects:
        for text in (repr(obj), str(obj)):
            assert SECRET not in text and TOKEN not in text, text
    # a server that echoes the secret back in its error message: the error never carries it
    server.set_script([acr_error(400, "SignatureDoesNotMatch", f"string to sign used secret {SECRET} token {TOKEN}")])
    sts_client = AcrClient(acr.target, acr.api, credentials=creds, backoff=FAST)
    with pytest.raises(AuthError) as info:
        sts_client.get_instance()
    for text in (str(info.value), repr(info.value), str(info.value.args), info.value.message):
        assert SECRET not in text and TOKEN not in text
    assert "***" in str(info.value)
    # the STS token really went out on the wire (so the redaction test above is meaningful)
    assert server.requests[-1]["headers"].get("x-acs-security-token") == TOKEN
    assert SECRET not in caplog.text and TOKEN not in caplog.text
    assert redact(f"x {SECRET} y") == "x *** y"


def test_block_type_slug_and_secret_fields():
    assert AlibabaCloudCredentials.get_block_type_slug() == "alibaba-cloud-credentials"
    block = AlibabaCloudCredentials(access_key_id="AK", access_key_secret=SECRET)
    assert block.access_key_secret.get_secret_value() == SECRET
    assert block.security_token is None
    schema = AlibabaCloudCredentials.model_json_schema()
    assert schema["properties"]["access_key_secret"].get("format") == "password"


_CHAIN_PROBE = """
import sys
from acr_gc.config import Target
from acr_gc.cloud.credentials import resolve
from acr_gc.cloud.errors import AuthError
try:
    resolved = resolve(Target(instance_id="cri-x", bucket="b"))
    print("OK", resolved.check(), repr(resolved), repr(resolved.credential))
except AuthError as err:
    print("AUTH", str(err))
"""


def _probe_chain(env_extra: dict, tmp_path) -> str:
    """alibabacloud_credentials reads the environment at import time: probe in a fresh process."""
    import os
    import subprocess

    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALIBABA_CLOUD_", "ALICLOUD_"))}
    env.update({"HOME": str(tmp_path), "ALIBABA_CLOUD_ECS_METADATA_DISABLED": "true",
                "ALIBABA_CLOUD_CREDENTIALS_FILE": str(tmp_path / "none"),
                "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    env.update(env_extra)
    out = subprocess.run([sys.executable, "-c", _CHAIN_PROBE], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip().splitlines()[-1]


def test_chain_uses_environment_variables(tmp_path):
    line = _probe_chain({"ALIBABA_CLOUD_ACCESS_KEY_ID": "AKIDFROMENV", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": SECRET},
                        tmp_path)
    assert line.startswith("OK AKIDFROMENV ResolvedCredentials(source='chain')")
    assert SECRET not in line


def test_chain_uses_the_profile_file(tmp_path):
    (tmp_path / "creds.ini").write_text(
        f"[default]\ntype = access_key\naccess_key_id = AKIDFROMFILE\naccess_key_secret = {SECRET}\n")
    line = _probe_chain({"ALIBABA_CLOUD_CREDENTIALS_FILE": str(tmp_path / "creds.ini")}, tmp_path)
    assert line.startswith("OK AKIDFROMFILE")
    assert SECRET not in line


def test_chain_without_any_credentials_is_an_auth_error(tmp_path):
    line = _probe_chain({}, tmp_path)
    assert line.startswith("AUTH credentials resolve on chain failed: CredentialException")


def test_chain_sees_environment_keys_set_after_the_library_was_imported(monkeypatch):
    """alibabacloud_credentials snapshots the environment at import; a key set later (the
    demo sets the emulator's key in-process) must still be what the chain resolves, and a
    changed key must replace the old one."""
    import alibabacloud_credentials.utils.auth_util  # noqa: F401 - the import-time snapshot
    from acr_gc.cloud.credentials import resolve

    target = Target(instance_id="cri-env", bucket="b")
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", "AKIDSETLATER1")
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", SECRET)
    assert resolve(target).check() == "AKIDSETLATER1"
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", "AKIDSETLATER2")
    resolved = resolve(target)
    assert resolved.check() == "AKIDSETLATER2"
    assert SECRET not in repr(resolved) and SECRET not in str(resolved)


@pytest.mark.parametrize(("endpoint", "protocol", "path_style"), [
    ("127.0.0.1:9101", "HTTP", True),
    ("127.8.9.10:9101", "HTTP", True),  # all of 127.0.0.0/8 is this machine
    ("localhost:9101", "HTTP", True),
    ("[::1]:9101", "HTTP", True),
    ("10.0.0.5:9101", "HTTPS", True),  # an IP across a network: signed requests never in plain HTTP
    ("192.0.2.2", "HTTPS", True),
    ("[fd00::2]:443", "HTTPS", True),
    ("cr.cn-hangzhou.aliyuncs.com", "HTTPS", False),
])
def test_plain_http_only_for_loopback_endpoints(endpoint, protocol, path_style):
    creds = from_keys("AK", SECRET)
    t = Target(instance_id="cri-x", bucket="b", acr_endpoint=endpoint, oss_endpoint=endpoint)
    acr, oss = AcrClient(t, credentials=creds), OssClient(t, credentials=creds)
    # what the vendor SDK clients were configured with: the scheme they dial
    assert (acr._sdk()._protocol, oss._sdk()._protocol) == (protocol, protocol)
    assert oss.path_style is path_style  # an IP cannot carry a bucket subdomain: path-style, over HTTPS too


def test_an_explicit_http_scheme_to_a_remote_endpoint_is_refused():
    creds = from_keys("AK", SECRET)
    for endpoint in ("http://10.0.0.5:9101", "http://cr.cn-hangzhou.aliyuncs.com"):
        t = Target.model_construct(instance_id="cri-x", bucket="b", region="cn-hangzhou", acr_endpoint=endpoint,
                                   oss_endpoint=endpoint, credentials="chain")
        with pytest.raises(ValueError, match="plain HTTP is used only for a loopback endpoint"):
            AcrClient(t, credentials=creds)
        with pytest.raises(ValueError, match="plain HTTP is used only for a loopback endpoint"):
            OssClient(t, credentials=creds)


def test_the_tests_http_servers_take_a_burst_that_arrives_while_their_accept_loop_waits():
    """25 connections (2 s connect timeout) arrive while the server's accept loop has not
    run for 1.2 s, as on a machine far over its cores: every one is accepted."""
    with LoopbackHttpServer(BaseHTTPRequestHandler) as server:
        failures = []

        def connect():
            try:
                socket.create_connection(server.server_address, timeout=2).close()
            except OSError as exc:
                failures.append(exc)

        burst = [threading.Thread(target=connect) for _ in range(25)]
        for thread in burst:
            thread.start()
        time.sleep(1.2)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        for thread in burst:
            thread.join()
        server.shutdown()
    assert failures == []
