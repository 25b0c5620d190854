"""Throttling (--qps) and injected faults (503 and dropped connections) on the ACR port."""

from __future__ import annotations

import httpx
import pytest
from alibabacloud_cr20181201 import models as cr
from alibabacloud_tea_openapi.exceptions import ClientException, ServerException

from acr_gc.emulator.process import EmulatorProcess

SMALL = {
    "clock": "2024-06-01T00:00:00Z",
    "instances": [{"instance_id": "cri-f", "name": "f", "bucket": "b", "namespaces": ["n"]}],
    "buckets": [{"name": "b"}],
}


def test_qps_flag_throttles_with_real_error(credentials):
    from emulator_kit import make_acr_client

    with EmulatorProcess(dict(SMALL, credentials=credentials), qps=5) as emu:
        client = make_acr_client(emu.acr_endpoint)
        ok = throttled = 0
        for _ in range(30):  # a burst far above 5 req/s
            try:
                client.get_instance(cr.GetInstanceRequest(instance_id="cri-f"))
                ok += 1
            except ClientException as exc:
                assert (exc.status_code, exc.code) == (400, "Throttling.User")
                assert "Request was denied due to user flow control." in exc.message
                throttled += 1
        assert ok >= 5 and throttled >= 10
        # admin endpoints are exempt and report the throttled count
        assert emu.truth()["fault_counts"]["acr:throttled"] == throttled


def test_injected_faults_503_and_dropped_connections(emulator, acr_client, credentials):
    emulator.load(dict(SMALL, credentials=credentials))
    emulator.set_faults(fault_rate=0.5, seed=7)
    client = acr_client()
    unavailable = dropped = ok = 0
    for _ in range(60):
        try:
            client.get_instance(cr.GetInstanceRequest(instance_id="cri-f"))
            ok += 1
        except ServerException as exc:
            assert (exc.status_code, exc.code) == (503, "ServiceUnavailable")
            unavailable += 1
        except ClientException:
            raise
        except Exception as exc:  # the SDK's wrapper around the broken connection
            assert type(exc).__name__ == "UnretryableException", repr(exc)
            dropped += 1
    assert unavailable > 0 and dropped > 0 and ok > 0
    counts = emulator.truth()["fault_counts"]
    assert (counts["acr:unavailable"], counts["acr:dropped"]) == (unavailable, dropped)
    emulator.set_faults(fault_rate=0)
    assert client.get_instance(cr.GetInstanceRequest(instance_id="cri-f")).body.instance_id == "cri-f"


def test_latency_and_bad_fault_settings(emulator, acr_client, credentials):
    import time

    emulator.load(dict(SMALL, credentials=credentials))
    emulator.set_faults(latency_ms=200)
    client = acr_client()
    start = time.monotonic()
    client.get_instance(cr.GetInstanceRequest(instance_id="cri-f"))
    assert time.monotonic() - start >= 0.2
    response = httpx.post(emulator.admin_url + "/faults", json={"fault_rate": 2}, trust_env=False)
    assert response.status_code == 400
    response = httpx.post(emulator.admin_url + "/load", json={"clock": "not a date"}, trust_env=False)
    assert response.status_code == 400 and "invalid dataset" in response.json()["error"]
