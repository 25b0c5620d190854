"""``ThreadedEmulator`` is the emulator of ``EmulatorProcess``, on a thread of the test process.

The same dataset and the same calls through the real SDKs (ACR reads, a GC run to the
end, OSS reads and writes, injected faults drawn from one seed) must leave the same
ground truth and the same answers in both. And a thread in the test process must give
back what a process gives back by dying: its ports (``stop``), and must not have changed
the test process on the way (logging, the secret registry of ``acr_gc.cloud.errors``).

Dataset (instance cri-t, versioned bucket t-storage, one INSTANCE rule keeping the 2
newest tags): app/web w1..w4 (4 images on one shared base layer): w1, w2 expire.
"""

from __future__ import annotations

import logging
import socket
import time
from datetime import datetime

import pytest
from alibabacloud_cr20181201 import models as cr
from alibabacloud_tea_openapi.exceptions import ServerException

from acr_gc.emulator.process import EmulatorProcess
from acr_gc.emulator.threaded import ThreadedEmulator
from emulator_kit import AK, SECRET, call_gc_action, make_acr_client
from oss_sdk_kit import bucket_stat, oss_call, oss_client

INSTANCE, BUCKET = "cri-t", "t-storage"
BASE = "sha256:" + "b" * 64


def digest(i: int) -> str:
    return f"sha256:{i:064x}"


DATASET = {
    "clock": "2024-06-01T00:00:00Z",
    "credentials": [{"access_key_id": AK, "access_key_secret": SECRET, "principal": "ops"}],
    "layers": {BASE: 1000, **{digest(i): 100 * i for i in range(1, 5)}},
    "instances": [{
        "instance_id": INSTANCE, "name": "t", "gc_whitelisted": True, "bucket": BUCKET, "namespaces": ["app"],
        "repositories": [{"namespace": "app", "name": "web", "tags": [
            {"tag": f"w{i}", "digest": digest(i + 100), "updated": f"2024-05-0{i}T00:00:00Z", "layers": [BASE, digest(i)]}
            for i in range(1, 5)]}],
        "lifecycle_rules": [{"scope": "INSTANCE", "retention_tag_count": 2}],
    }],
    "buckets": [{"name": BUCKET, "versioning": "Enabled", "extra_objects": [{"key": "backup/a.tar", "size": 500}]}],
}  # fmt: skip
FREED = 2 * 71 + 2 * 1024 + 100 + 200  # 2 tag links, 2 manifests, 2 own layers; the base stays


def wait_for(predicate, timeout: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.05)
    raise AssertionError(f"{what} not reached within {timeout} s")


def exercise(emu) -> dict:
    """The same client calls on either emulator; what the clients read, time fields left out."""
    acr, oss = make_acr_client(emu.acr_endpoint), oss_client(emu.oss_endpoint)
    [repo] = acr.list_repository(cr.ListRepositoryRequest(instance_id=INSTANCE)).body.repositories
    tags = [(i.tag, i.digest, i.image_size) for i in acr.list_repo_tag(
        cr.ListRepoTagRequest(instance_id=INSTANCE, repo_id=repo.repo_id, page_size=10)).body.images]  # fmt: skip
    call_gc_action(acr, "CreateGarbageCollectionTask", InstanceId=INSTANCE)
    wait_for(lambda: emu.truth()["instances"][INSTANCE]["gc_tasks"][0]["state"] == "SUCCESS", what="GC SUCCESS")
    emu.advance_clock(5)  # the noncurrent versions GC left are 5 days old now
    versions = oss_call(oss, BUCKET, "ListObjectVersions", "/?versions")["ListVersionsResult"]
    stat = bucket_stat(oss, BUCKET)
    emu.set_faults(fault_rate=0.5, seed=7)
    outcomes = []
    for _ in range(30):
        try:
            acr.get_instance(cr.GetInstanceRequest(instance_id=INSTANCE))
            outcomes.append("ok")
        except ServerException as exc:
            outcomes.append(exc.code)
        except Exception as exc:  # the SDK's wrapper around a dropped connection
            outcomes.append(type(exc).__name__)
    emu.set_faults(fault_rate=0)
    return {
        "tags": tags,
        "versions": [(v["Key"], v["Size"], v["IsLatest"]) for v in versions["Version"]],
        "stat": {k: stat[k] for k in ("Storage", "ObjectCount", "DeleteMarkerCount")},
        "outcomes": outcomes,
    }


def timeless(truth: dict) -> dict:
    """Truth with the fields that read the running clock (or name a task) left out."""
    out = {k: v for k, v in truth.items() if k != "clock"}
    for inst in out["instances"].values():
        inst["gc_tasks"] = [{k: v for k, v in t.items() if k not in ("task_id", "created", "finished", "started")}
                            for t in inst["gc_tasks"]]
    return out


def test_threaded_and_process_emulators_answer_the_same(tmp_path):
    with EmulatorProcess(DATASET, gc_tags_per_second=50) as process:
        by_process = exercise(process), timeless(process.truth())
    with ThreadedEmulator(DATASET, gc_tags_per_second=50) as threaded:
        by_thread = exercise(threaded), timeless(threaded.truth())
    assert by_thread == by_process
    seen, truth = by_thread
    # and both are right, not merely alike: hand-worked figures
    assert [t[0] for t in seen["tags"]] == ["w4", "w3", "w2", "w1"]
    assert truth["instances"][INSTANCE]["tags"] == {"app/web": ["w3", "w4"]}
    [gc] = truth["instances"][INSTANCE]["gc_tasks"]
    assert (gc["state"], gc["tags_deleted"], gc["bytes_deleted"]) == ("SUCCESS", 2, FREED)
    assert truth["buckets"][BUCKET]["noncurrent_bytes"] == FREED
    assert {"ok", "ServiceUnavailable"} <= set(seen["outcomes"]) and len(set(seen["outcomes"])) == 3


def test_day_seconds_and_faults_reach_the_threaded_emulator():
    with ThreadedEmulator(DATASET, day_seconds=1.0, qps=5) as emu:
        def clock() -> datetime:
            return datetime.fromisoformat(emu.truth()["clock"].replace("Z", "+00:00"))

        r0 = time.monotonic()
        c0 = clock()
        r1 = time.monotonic()
        time.sleep(0.5)
        r2 = time.monotonic()
        c1 = clock()
        r3 = time.monotonic()
        emulated_days = (c1 - c0).total_seconds() / 86400  # one emulated day per real second
        assert r2 - r1 <= emulated_days <= r3 - r0, (emulated_days, r2 - r1, r3 - r0)
        client = make_acr_client(emu.acr_endpoint)
        throttled = 0
        for _ in range(20):
            try:
                client.get_instance(cr.GetInstanceRequest(instance_id=INSTANCE))
            except Exception as exc:  # noqa: BLE001 - counted and compared with the truth
                assert getattr(exc, "code", None) == "Throttling.User", repr(exc)
                throttled += 1
        assert throttled >= 5 and emu.truth()["fault_counts"]["acr:throttled"] == throttled


def listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_stop_frees_the_ports_for_a_new_emulator():
    first = ThreadedEmulator(DATASET).start()
    ports = {"acr_port": first.acr_port, "oss_port": first.oss_port, "registry_port": first.registry_port}
    make_acr_client(first.acr_endpoint).get_instance(cr.GetInstanceRequest(instance_id=INSTANCE))  # a kept-alive connection
    first.stop()
    assert not first.alive
    assert not any(listening(port) for port in ports.values())
    with ThreadedEmulator(DATASET, **ports) as second:
        assert (second.acr_port, second.oss_port, second.registry_port) == tuple(ports.values())
        assert second.truth()["instances"][INSTANCE]["tags"] == {"app/web": ["w1", "w2", "w3", "w4"]}
    with pytest.raises(Exception):
        first.truth()


def test_the_test_process_keeps_its_logging_and_secret_registry():
    from acr_gc.cloud import errors

    def logging_setup():
        """Root and every logger's level, handlers, propagation; of uvicorn's own loggers
        (which only the emulator uses here: their levels are its own, and uvicorn empties
        ``uvicorn.access`` when access_log is off) the handlers alone, none may be added."""
        loggers = {}
        for name, lg in logging.Logger.manager.loggerDict.items():
            handlers = list(getattr(lg, "handlers", []))
            loggers[name] = handlers if name.startswith("uvicorn") else (
                getattr(lg, "level", None), handlers, getattr(lg, "propagate", None), getattr(lg, "disabled", None))
        return list(logging.root.handlers), logging.root.level, loggers

    secrets = set(errors._SECRETS)
    before = logging_setup()
    with ThreadedEmulator(DATASET) as emu:
        emu.truth()
        during = logging_setup()
    assert during[:2] == before[:2], "the emulator changed the root logger"
    for name, value in before[2].items():
        if name.startswith("uvicorn"):
            assert set(during[2][name]) <= set(value), f"handlers installed on {name}: {during[2][name]}"
        else:
            assert during[2][name] == value, name
    assert errors._SECRETS == secrets, "the emulator registered secrets in the test process"


def test_a_restore_document_starts_the_dumped_state():
    with ThreadedEmulator(DATASET, gc_tags_per_second=50) as first:
        call_gc_action(make_acr_client(first.acr_endpoint), "CreateGarbageCollectionTask", InstanceId=INSTANCE)
        wait_for(lambda: first.truth()["instances"][INSTANCE]["gc_tasks"][0]["state"] == "SUCCESS", what="GC SUCCESS")
        dump, truth = first.dump(), timeless(first.truth())
    with ThreadedEmulator(restore=dump) as second:
        assert timeless(second.truth()) == truth
        assert truth["instances"][INSTANCE]["tags"] == {"app/web": ["w3", "w4"]}
        second.reset()  # back to the dataset the first one started from
        assert second.truth()["instances"][INSTANCE]["tags"] == {"app/web": ["w1", "w2", "w3", "w4"]}
