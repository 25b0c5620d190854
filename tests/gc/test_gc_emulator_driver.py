"""The ``emulator`` GC driver against the real emulator process, through the real ACR SDK.

Dataset (worked by hand): instance ``cri-drv`` (whitelisted) with one repository
``team/app`` of 40 tags ``t00`` (oldest) … ``t39`` (newest), one day apart, and a REPO rule
keeping the 2 newest → 38 expired tags (``t00`` … ``t37``). At the fixture's 20 tags per
second a task runs ≈ 1.9 s: long enough to see it RUNNING, short enough to wait for.
Instance ``cri-drv-nowl`` is not whitelisted.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest

from acr_gc.cloud import credentials as cloud_credentials
from acr_gc.cloud.clients import acr_client
from acr_gc.cloud.errors import CloudError
from acr_gc.config import Api, Config, Freeze, Gc, Target
from acr_gc.gc import TERMINAL_STATES, make_driver
from acr_gc.gc.emulator import EmulatorGcDriver

pytestmark = pytest.mark.slow

INSTANCE = "cri-drv"
NOT_WHITELISTED = "cri-drv-nowl"
TAGS = 40
KEEP = 2
EXPIRED = TAGS - KEEP  # 38, by hand


def _hex(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()


def dataset(credentials: list[dict]) -> dict:
    start = datetime(2024, 1, 1, tzinfo=timezone.utc)
    layers = {f"sha256:{_hex(f'layer-{i}')}": 1000 + i for i in range(TAGS)}
    layer_ids = list(layers)
    tags = [{"tag": f"t{i:02d}", "digest": f"sha256:{_hex(f'manifest-{i}')}",
             "updated": (start + timedelta(days=i)).isoformat(), "layers": [layer_ids[i]]} for i in range(TAGS)]
    return {
        "clock": "2024-06-01T00:00:00Z",
        "credentials": credentials,
        "layers": layers,
        "instances": [
            {"instance_id": INSTANCE, "name": "driver", "region": "cn-hangzhou", "gc_whitelisted": True,
             "bucket": "drv-bucket", "namespaces": ["team"],
             "repositories": [{"namespace": "team", "name": "app", "tags": tags}],
             "lifecycle_rules": [{"scope": "REPO", "namespace": "team", "repo": "app",
                                  "retention_tag_count": KEEP}]},
            {"instance_id": NOT_WHITELISTED, "name": "nowl", "region": "cn-hangzhou", "gc_whitelisted": False,
             "bucket": "nowl-bucket", "namespaces": ["team"],
             "repositories": [{"namespace": "team", "name": "app", "tags": tags[:3]}],
             "lifecycle_rules": [{"scope": "INSTANCE", "retention_tag_count": 1}]},
        ],
        "buckets": [{"name": "drv-bucket"}, {"name": "nowl-bucket"}],
    }


@pytest.fixture
def loaded(emulator, credentials, monkeypatch):
    """The dataset loaded; the default credential chain reads the dataset's key from the
    environment (the chain is cached per process, so it is rebuilt for this test)."""
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", credentials[0]["access_key_id"])
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", credentials[0]["access_key_secret"])
    monkeypatch.setattr(cloud_credentials, "_chain", None)
    emulator.load(dataset(credentials))
    return emulator


def config(emu, instance_id: str = INSTANCE) -> Config:
    return Config(
        target=Target(instance_id=instance_id, bucket="drv-bucket", acr_endpoint=emu.acr_endpoint,
                      oss_endpoint=emu.oss_endpoint),
        freeze=Freeze(principals=["ci-pusher"]),
        gc=Gc(driver="emulator", poll_interval=0.05, timeout=30),
        api=Api(qps=1000, retries=2, timeout_s=10),
    )


def wait_final(driver, task_id: str, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    status = driver.status(task_id)
    while status.state not in TERMINAL_STATES and time.monotonic() < deadline:
        time.sleep(0.05)
        status = driver.status(task_id)
    return status


def driver_for(cfg: Config):
    return make_driver(cfg, acr_client(cfg))


def gc_tasks(emu, instance_id: str = INSTANCE) -> list[dict]:
    return emu.truth()["instances"][instance_id]["gc_tasks"]


def test_is_enabled_true_and_false(loaded):
    assert isinstance(driver_for(config(loaded)), EmulatorGcDriver)
    assert driver_for(config(loaded)).is_enabled() is True
    assert driver_for(config(loaded, NOT_WHITELISTED)).is_enabled() is False
    with pytest.raises(CloudError) as info:  # and the emulator refuses to start one there
        driver_for(config(loaded, NOT_WHITELISTED)).start()
    assert info.value.code == "GC_NOT_ENABLED"
    assert gc_tasks(loaded, NOT_WHITELISTED) == [] and gc_tasks(loaded) == []


def test_start_attaches_to_the_active_task_instead_of_a_second(loaded):
    first = driver_for(config(loaded))
    assert first.active_task() is None
    started = first.start()
    assert started.task_id.startswith("gct-") and started.active
    assert started.tags_planned == EXPIRED

    # A re-run (a new driver, as after a crash) finds it and attaches; so does the same driver.
    again = driver_for(config(loaded))
    assert again.active_task().task_id == started.task_id
    assert again.start().task_id == started.task_id
    assert first.start().task_id == started.task_id
    assert [t["task_id"] for t in gc_tasks(loaded)] == [started.task_id]

    final = wait_final(again, started.task_id)
    assert (final.state, final.progress, final.tags_deleted) == ("SUCCESS", 100, EXPIRED)
    assert again.active_task() is None
    truth = loaded.truth()["instances"][INSTANCE]["tags"]["team/app"]
    assert truth == [f"t{i:02d}" for i in range(EXPIRED, TAGS)]

    # With nothing active, start creates a new task (the previous one is finished).
    second = again.start()
    assert second.task_id != started.task_id
    assert sorted(t["task_id"] for t in gc_tasks(loaded)) == sorted([second.task_id, started.task_id])
    wait_final(again, second.task_id)


def test_cancel_of_a_finished_task_returns_its_status(loaded):
    driver = driver_for(config(loaded))
    task = driver.start()
    final = wait_final(driver, task.task_id)
    assert final.state == "SUCCESS"
    cancelled = driver.cancel(task.task_id)  # no error: it finished meanwhile
    assert cancelled is not None
    assert (cancelled.task_id, cancelled.state, cancelled.tags_deleted) == (task.task_id, "SUCCESS", EXPIRED)
    assert [(t["task_id"], t["state"]) for t in gc_tasks(loaded)] == [(task.task_id, "SUCCESS")]


def test_cancel_of_a_running_task_stops_it(loaded):
    driver = driver_for(config(loaded))
    task = driver.start()
    cancelled = driver.cancel(task.task_id)
    assert cancelled.task_id == task.task_id and cancelled.state == "CANCELED"
    assert 0 <= cancelled.tags_deleted < EXPIRED
    after = driver.status(task.task_id)
    assert after.state == "CANCELED"
    left = loaded.truth()["instances"][INSTANCE]["tags"]["team/app"]
    assert len(left) == TAGS - after.tags_deleted  # only deleted tags gone, nothing more
