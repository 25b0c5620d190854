"""The adapters against the emulator on three things real clouds do (issue 12, items 6-8):

* GetBucketLifecycle with every rule filter, in OSS's XML shape, read back whole;
* GetBucketStat delayed (``stat_delay_hours``): figures and LastModifiedTime of an earlier
  moment, and the sample timed by that LastModifiedTime, not by the HTTP Date;
* ACR business errors: HTTP 200 with ``IsSuccess: false`` — transient codes retried (and
  counted), other codes one-line errors at once.

Real parts: the session emulator over HTTP, the real SDK clients. Expectations come from
the dataset written here and the emulator's truth.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone

import pytest

from acr_gc.cloud import calls
from acr_gc.cloud.acr import AcrClient
from acr_gc.cloud.clients import oss_client
from acr_gc.cloud.credentials import from_keys
from acr_gc.cloud.errors import CloudError, Unavailable
from acr_gc.cloud.oss import LifecycleRule, OssClient
from acr_gc.config import Api, Target

AK, SECRET = "LTAI-bucket-business", "bucket-business-secret"
FAST = calls.Backoff(base_s=0.01, cap_s=0.05, floor_s=0.005)
CLOCK = datetime(2026, 11, 1, tzinfo=timezone.utc)


def _sha(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


REPOS = 12  # 12 repositories x 3 tags: enough requests for the injected errors to show


def dataset(lifecycle: list[dict] | None = None) -> dict:
    repos = [{"namespace": "apps", "name": f"r{i:02d}", "tags": [
        {"tag": f"t{j}", "digest": _sha(f"{i}-{j}"), "updated": f"2026-10-0{j + 1}T00:00:00Z",
         "layers": [_sha("layer")]} for j in range(3)]} for i in range(REPOS)]
    return {
        "clock": CLOCK.isoformat(),
        "credentials": [{"access_key_id": AK, "access_key_secret": SECRET, "principal": "uid-ops"}],
        "layers": {_sha("layer"): 5000},
        "instances": [{"instance_id": "cri-bb", "name": "cri-bb", "gc_whitelisted": True, "bucket": "cri-bb-storage",
                       "namespaces": ["apps"], "repositories": repos}],
        "buckets": [{"name": "cri-bb-storage", "versioning": "Enabled", "lifecycle": lifecycle or []}],
    }


def clients(emulator, retries: int = 6):
    target = Target(instance_id="cri-bb", bucket="cri-bb-storage", acr_endpoint=emulator.acr_endpoint,
                    oss_endpoint=emulator.oss_endpoint)
    api = Api(qps=1000, retries=retries, timeout_s=10)
    creds = from_keys(AK, SECRET)
    return AcrClient(target, api, credentials=creds, backoff=FAST), OssClient(target, api, credentials=creds, backoff=FAST)


# ---- item 6: GetBucketLifecycle, every filter --------------------------------------------


def test_lifecycle_rules_are_read_with_every_filter(emulator):
    emulator.load(dataset([
        {"id": "plain", "prefix": "docker/", "noncurrent_days": 3},
        {"id": "filtered", "prefix": "docker/", "status": "Disabled", "noncurrent_days": 5,
         "tags": [{"key": "a", "value": "1"}, {"key": "b", "value": "2"}],
         "not": {"prefix": "docker/registry/", "tags": [{"key": "keep", "value": "yes"}]},
         "object_size_greater_than": 10, "object_size_less_than": 2048},
        {"id": "dated", "prefix": "logs/", "created_before_date": "2026-01-01T00:00:00Z"},
    ]))
    _, oss = clients(emulator)
    assert oss.get_lifecycle() == [
        LifecycleRule(id="plain", prefix="docker/", status="Enabled", expiration_days=None, noncurrent_days=3),
        LifecycleRule(id="filtered", prefix="docker/", status="Disabled", expiration_days=None, noncurrent_days=5,
                      tags=(("a", "1"), ("b", "2")), nots=(("docker/registry/", (("keep", "yes"),)),),
                      object_size_greater_than=10, object_size_less_than=2048),
        LifecycleRule(id="dated", prefix="logs/", status="Enabled", expiration_days=None, noncurrent_days=None,
                      created_before_date="2026-01-01T00:00:00.000Z"),
    ]


# ---- item 7: a delayed GetBucketStat -----------------------------------------------------


def test_a_delayed_stat_answers_an_earlier_moment_timed_by_its_last_modified_time(emulator):
    emulator.load(dataset())
    _, oss = clients(emulator)
    loaded = emulator.truth()["buckets"]["cri-bb-storage"]
    emulator.set_faults(stat_delay_hours=30)

    oss.put_object("exports/new.bin", b"x" * 777)  # after the load: 30 emulated hours ago it was not there
    stat = oss.bucket_stat()
    now = datetime.fromisoformat(emulator.truth()["clock"].replace("Z", "+00:00"))
    assert (stat.storage_bytes, stat.object_count) == (loaded["storage_bytes"], loaded["objects"])
    assert timedelta(hours=30) <= now - stat.last_modified <= timedelta(hours=30, minutes=1)
    assert stat.taken_at == stat.last_modified  # the sample's time is when the figures were taken
    assert stat.asked_at is not None and stat.asked_at - stat.taken_at >= timedelta(hours=30)

    emulator.advance_clock(2)  # 48 emulated hours later the write is 18 hours inside the figures
    stat = oss.bucket_stat()
    assert (stat.storage_bytes, stat.object_count) == (loaded["storage_bytes"] + 777, loaded["objects"] + 1)

    emulator.set_faults(stat_delay_hours=0)  # undelayed: now, as the truth has it
    truth = emulator.truth()
    stat = oss.bucket_stat()
    assert (stat.storage_bytes, stat.object_count) == (truth["buckets"]["cri-bb-storage"]["storage_bytes"],
                                                       truth["buckets"]["cri-bb-storage"]["objects"])


# ---- item 8: business errors inside HTTP 200 ---------------------------------------------


def test_the_emulator_answers_a_business_error_inside_http_200(emulator, acr_client):
    from alibabacloud_cr20181201 import models as m

    emulator.load(dataset())
    emulator.set_faults(business_error_rate=0.999, business_error_codes=["SystemError"])
    response = acr_client(AK, SECRET).list_namespace(m.ListNamespaceRequest(instance_id="cri-bb"))
    assert response.status_code == 200  # the SDK sees a successful exchange...
    assert (response.body.is_success, response.body.code) == (False, "SystemError")  # ...that failed
    assert emulator.truth()["fault_counts"]["acr:business"] == 1


def test_transient_business_errors_are_retried_and_counted(emulator):
    emulator.load(dataset())
    emulator.set_faults(business_error_rate=0.3, seed=5)  # SystemError, Throttling.User, ServiceUnavailable
    acr, _ = clients(emulator, retries=10)
    calls.reset_stats()

    tags = {repo.full_name: sorted(t.tag for t in acr.list_repo_tags(repo.repo_id)) for repo in acr.list_repositories()}

    assert tags == emulator.truth()["instances"]["cri-bb"]["tags"]  # exactly right despite the errors
    injected = emulator.truth()["fault_counts"].get("acr:business", 0)
    stats = calls.stats()
    assert injected > 0
    assert stats.by_kind.get("business", 0) == stats.retries == injected  # one retry per injected error
    assert stats.failures == 0


def test_other_business_codes_are_one_line_errors_at_once(emulator):
    emulator.load(dataset())
    emulator.set_faults(business_error_rate=0.999, business_error_codes=["PARAM_INVALID"])
    acr, _ = clients(emulator)
    calls.reset_stats()
    with pytest.raises(CloudError) as caught:
        acr.list_namespaces()
    err = caught.value
    assert not isinstance(err, Unavailable) and not err.retryable
    assert (err.code, err.http_status, err.attempts) == ("PARAM_INVALID", 200, 1)
    assert "\n" not in str(err) and str(err).startswith("ACR ListNamespace on cri-bb failed: PARAM_INVALID (200)")
    assert calls.stats().retries == 0


# ---- item 7: the product's sampling on lagging statistics --------------------------------


def _sampling_setup(emulator, tmp_path, **sampling):
    from acr_gc.config import Config
    from acr_gc.ledger import Ledger, Run

    config = Config.model_validate({
        "target": {"instance_id": "cri-bb", "bucket": "cri-bb-storage", "acr_endpoint": emulator.acr_endpoint,
                   "oss_endpoint": emulator.oss_endpoint},
        "sampling": {"day_length": 1.0, **sampling},
        "ledger": {"url": f"sqlite:///{tmp_path / 'ledger.db'}"},
        "freeze": {"principals": ["acs:ram::1:user/pusher"]},
        "report": {"out_dir": str(tmp_path / "out")},
    })
    ledger = Ledger(config.ledger.url)
    with ledger.session() as session:
        session.add(Run(run_id="r1", instance_id="cri-bb", bucket="cri-bb-storage", region="cn-hangzhou",
                        started_at=CLOCK, out_dir=str(tmp_path / "out"), state="GC_DONE"))
    return config, ledger


def _advance_soon(emulator, days: float, after_s: float = 0.3):
    import threading

    timer = threading.Timer(after_s, emulator.advance_clock, args=(days,))
    timer.start()
    return timer


def test_the_baseline_waits_until_the_statistics_cover_its_moment(emulator, tmp_path, monkeypatch):
    from acr_gc.tasks.sampling import baseline_sample

    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", AK)
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", SECRET)
    from acr_gc.cloud.credentials import reset_chain
    reset_chain()
    emulator.load(dataset())
    loaded = emulator.truth()["buckets"]["cri-bb-storage"]
    _, oss = clients(emulator)
    oss.put_object("exports/just-now.bin", b"y" * 999)  # the baseline must include this
    emulator.set_faults(stat_delay_hours=30)
    config, ledger = _sampling_setup(emulator, tmp_path, stat_wait_max="P3D")
    asked = datetime.fromisoformat(emulator.truth()["clock"].replace("Z", "+00:00"))

    timer = _advance_soon(emulator, 2)  # the cloud's clock moves on while the baseline waits
    sample = baseline_sample.fn(config, oss_client(config), ledger, "r1")
    timer.join()

    assert (sample.storage_bytes, sample.object_count) == (loaded["storage_bytes"] + 999, loaded["objects"] + 1)
    assert sample.taken_at >= asked  # figures that cover the moment it was asked for
    assert sample.phase == "before"


@pytest.mark.parametrize("wait_max, words", [
    ("PT1H", "behind the cloud's clock"),  # 30 h behind already: no point waiting
    ("PT31H", "after waiting"),            # worth waiting, but the statistics fall further behind
])
def test_a_baseline_whose_statistics_stay_late_stops_with_one_clear_line(emulator, tmp_path, monkeypatch,
                                                                        wait_max, words):
    import threading

    from acr_gc.cloud.credentials import reset_chain
    from acr_gc.tasks.sampling import StatisticsLate, baseline_sample

    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", AK)
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", SECRET)
    reset_chain()
    emulator.load(dataset())
    emulator.set_faults(stat_delay_hours=30)
    config, ledger = _sampling_setup(emulator, tmp_path, stat_wait_max=wait_max)

    def stuck_statistics():  # 36 h pass and OSS's statistics stop: the lag grows to 66 h
        emulator.set_faults(stat_delay_hours=66)
        emulator.advance_clock(1.5)

    timer = threading.Timer(0.3, stuck_statistics)
    timer.start()
    with pytest.raises(StatisticsLate) as caught:
        baseline_sample.fn(config, oss_client(config), ledger, "r1")
    timer.join()
    message = str(caught.value)
    assert "\n" not in message and "sampling.stat_wait_max" in message and "nothing was changed" in message
    assert words in message, message


def test_a_sample_whose_time_goes_backwards_is_kept_out_and_counted(emulator, tmp_path, monkeypatch):
    from acr_gc.cloud.credentials import reset_chain
    from acr_gc.ledger import Sample
    from acr_gc.reports.build import build_report
    from acr_gc.tasks.sampling import sample_bucket
    from sqlalchemy import select

    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", AK)
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", SECRET)
    reset_chain()
    emulator.load(dataset())
    config, ledger = _sampling_setup(emulator, tmp_path)

    first = sample_bucket.fn(oss_client(config), ledger, "r1", "before")
    emulator.set_faults(stat_delay_hours=5)  # the next answer's figures are 5 hours older
    assert sample_bucket.fn(oss_client(config), ledger, "r1", "after") is None  # kept out of the series
    emulator.set_faults(stat_delay_hours=0)
    emulator.advance_clock(0.01)
    later = sample_bucket.fn(oss_client(config), ledger, "r1", "after")
    assert later is not None and later.taken_at > first.taken_at

    with ledger.session() as session:
        phases = [s.phase for s in session.scalars(select(Sample).where(Sample.run_id == "r1").order_by(Sample.id))]
    assert phases == ["before", "stale", "after"]  # stored apart, for the record
    folder = build_report(ledger, "r1", publish=False)
    samples_csv = (folder / "samples.csv").read_text(encoding="utf-8")
    assert "stale" not in samples_csv and samples_csv.count("\n") == 3  # header + the series of two
    assert "1 storage statistics answer went back in time" in (folder / "report.md").read_text(encoding="utf-8")


def test_emulator_serve_takes_stat_delay_hours(tmp_path):
    """`acr-gc emulator serve --stat-delay-hours 30` (through EmulatorProcess): the setting is
    a fault setting from the start (a reset keeps it) and GetBucketStat lags by it."""
    from acr_gc.emulator.process import EmulatorProcess

    with EmulatorProcess(dataset(), stat_delay_hours=30) as emu:
        assert emu.truth()["faults"]["stat_delay_hours"] == 30
        emu.reset()
        assert emu.truth()["faults"]["stat_delay_hours"] == 30
        _, oss = clients(emu)
        stat = oss.bucket_stat()
        assert stat.asked_at - stat.last_modified >= timedelta(hours=30)
