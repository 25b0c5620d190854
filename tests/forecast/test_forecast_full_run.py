"""A full run on the generated demo dataset: what GC removed from the bucket (the emulator's
ground truth) equals the plan's exact forecast within 0.5 %."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from acr_gc.demo import demo_config, demo_credentials
from acr_gc.emulator.dataset import BUNDLED_DEMO

pytestmark = pytest.mark.slow

BUCKET = "cri-demo-storage"


def test_measured_reclaimed_bytes_equal_the_forecast(emulator, prefect_api_url, tmp_path, monkeypatch):
    from acr_gc.cloud import calls
    from acr_gc.cloud.credentials import reset_chain
    from acr_gc.flows.reclaim import reclaim_storage
    from acr_gc.reports.files import new_run_id

    emulator.load(json.loads(BUNDLED_DEMO.read_text(encoding="utf-8")))
    emulator.set_faults(gc_tags_per_second=2000)  # the session emulator's 20 tags/s: 80 s for 1,642 tags
    calls.reset_limiters()
    for name, value in demo_credentials().items():
        monkeypatch.setenv(name, value)
    reset_chain()
    config = demo_config(emulator.acr_endpoint, emulator.oss_endpoint, tmp_path, emulator.registry_endpoint)
    config = config.model_copy(update={
        "sampling": config.sampling.model_copy(update={"mode": "scheduled"}),
        "freeze": config.freeze.model_copy(update={"principals": ["acs:ram::1234567890123456:user/ci-pusher"]}),
    })
    before = emulator.truth()["buckets"][BUCKET]["live_bytes"]
    run_id = new_run_id()
    state = reclaim_storage(config, run_id=run_id, return_state=True)
    assert state.is_completed(), state.message
    summary = json.loads((Path(tmp_path) / config.target.instance_id / run_id / "summary.json").read_text())
    assert summary["gc"]["state"] == "SUCCESS"
    plan = summary["plan"]
    assert plan["bytes_expected_is_upper_bound"] is False
    measured = before - emulator.truth()["buckets"][BUCKET]["live_bytes"]
    forecast = plan["bytes_expected"] + plan["bytes_unreferenced_before"]
    assert abs(measured - forecast) <= 0.005 * forecast, (measured, forecast)
