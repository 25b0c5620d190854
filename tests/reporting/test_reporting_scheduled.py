"""Scheduled mode (DESIGN section 7; issue 5): the monthly run ends after GC with GC_DONE
and an open window; the daily sampler, run with the emulator's clock advanced between
passes, adds a sample per pass, turns the report COMPLETE on the pass whose sample lands
at or after window_end, and adds the savings.csv row exactly once however often it runs.

Real parts only: the emulator on a real-time clock moved by
``advance_clock``, the real SDKs, ``reclaim_storage`` and ``sample_storage`` on the
session's Prefect server, and ``acr-gc sample --config`` as a subprocess once.
"""

from __future__ import annotations

import io
from datetime import timedelta
from pathlib import Path

import pytest

from emulator_kit import new_emulator
from reporting_support import (
    AFTER_BYTES,
    BEFORE_BYTES,
    BUCKET,
    CURRENCY,
    INSTANCE,
    MARGIN_DAYS,
    NONCURRENT_DAYS,
    PRICE,
    RECLAIMED_BYTES,
    SAVING,
    WRITER_AK,
    WRITER_SECRET,
    bucket_truth,
    cli_env,
    config_dict,
    csv_rows,
    dataset,
    iso,
    ledger_run_and_samples,
    run_cli,
    saving_half_up,
    summary_of,
    use_keys,
    utc,
    write_config,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def emu():
    # The emulated clock runs at real speed: only advance_clock moves it by days.
    with new_emulator(dataset(), gc_tags_per_second=50) as process:
        yield process


def _put_object(emu, key: str, data: bytes) -> None:
    """Another principal (an application) writes to the bucket through the real OSS SDK."""
    from alibabacloud_oss20190517 import models as oss_models
    from alibabacloud_oss20190517.client import Client
    from alibabacloud_tea_openapi import models as open_api_models

    client = Client(open_api_models.Config(access_key_id=WRITER_AK, access_key_secret=WRITER_SECRET,
                                           endpoint=emu.oss_endpoint, endpoint_type="ip", protocol="http",
                                           region_id="cn-hangzhou"))
    client.put_object(BUCKET, key, oss_models.PutObjectRequest(body=io.BytesIO(data)))


def _savings(root: Path) -> list[dict]:
    path = root / "out" / "savings.csv"
    return csv_rows(path) if path.exists() else []


def test_scheduled_mode_gc_done_then_sampler_completes_once(emu, prefect_api_url, tmp_path, monkeypatch):
    from acr_gc.config import Config
    from acr_gc.flows.reclaim import reclaim_storage
    from acr_gc.flows.sample import sample_storage
    from acr_gc.reports.files import new_run_id

    emu.load(dataset())
    assert bucket_truth(emu)["storage_bytes"] == BEFORE_BYTES
    raw = config_dict(emu, tmp_path, "scheduled")
    config_path = write_config(raw, tmp_path / "config.yaml")
    config = Config.model_validate(raw)
    use_keys(monkeypatch)
    run_id = new_run_id()
    folder = tmp_path / "out" / INSTANCE / run_id

    # ---- the monthly run: ends after GC, window open -------------------------------------
    state = reclaim_storage(config, run_id=run_id, return_state=True)
    assert state.is_completed(), state.message
    summary = summary_of(folder)
    assert summary["state"] == "GC_DONE" == state.result(raise_on_failure=False)["state"]
    storage = summary["storage"]
    assert storage["window_complete"] is False
    assert storage["samples"] == 2  # the baseline and the one right after GC
    assert storage["before_bytes"] == BEFORE_BYTES
    # Right after GC the deleted objects are noncurrent versions: still billed.
    assert storage["after_bytes"] == bucket_truth(emu)["storage_bytes"] == BEFORE_BYTES
    assert _savings(tmp_path) == []  # no savings row while the window is open
    run, _ = ledger_run_and_samples(raw["ledger"]["url"], run_id)
    finished = utc(run.gc_finished_at)
    assert storage["window_end"] == iso(finished + timedelta(days=NONCURRENT_DAYS + MARGIN_DAYS))
    assert run.state == "GC_DONE" and not run.savings_recorded

    def sampler_pass(advance_days: float) -> tuple[list[str], dict]:
        emu.advance_clock(advance_days)
        return sample_storage(config), summary_of(folder)

    # ---- pass 1: +1 day (noncurrent versions not yet released) -------------------------
    folders, summary = sampler_pass(1)
    assert folders == [str(folder)]
    assert summary["state"] == "GC_DONE" and summary["storage"]["window_complete"] is False
    assert summary["storage"]["samples"] == 3
    assert summary["storage"]["after_bytes"] == BEFORE_BYTES == bucket_truth(emu)["storage_bytes"]
    assert _savings(tmp_path) == []

    # ---- pass 2: +1.5 days (2.5 after GC: released; window ends at 4) ----------------------
    folders, summary = sampler_pass(1.5)
    assert folders == [str(folder)]
    assert summary["state"] == "GC_DONE" and summary["storage"]["window_complete"] is False
    assert summary["storage"]["samples"] == 4
    assert summary["storage"]["after_bytes"] == AFTER_BYTES == bucket_truth(emu)["storage_bytes"]
    assert summary["storage"]["reclaimed_bytes"] == RECLAIMED_BYTES  # provisional until the window closes
    assert _savings(tmp_path) == []

    # ---- pass 3, the CLI: +2 days (4.5 after GC >= window_end): COMPLETE, the row ----------
    emu.advance_clock(2)
    done = run_cli(["sample", "--config", str(config_path)], cli_env(prefect_api_url))
    assert done.returncode == 0, (done.stdout, done.stderr)
    assert done.stdout.strip().splitlines()[-1] == str(folder)
    final = summary_of(folder)
    assert final["state"] == "COMPLETE"
    assert final["storage"]["window_complete"] is True
    assert final["storage"]["samples"] == 5
    assert final["storage"]["before_bytes"] == BEFORE_BYTES
    assert final["storage"]["after_bytes"] == AFTER_BYTES == bucket_truth(emu)["storage_bytes"]
    assert final["storage"]["reclaimed_bytes"] == RECLAIMED_BYTES == BEFORE_BYTES - AFTER_BYTES
    assert final["cost"] == {"currency": CURRENCY, "price_per_gb_month": PRICE,
                             "saving_per_month": saving_half_up(RECLAIMED_BYTES, PRICE)}
    assert final["cost"]["saving_per_month"] == SAVING
    expected_row = {
        "month": finished.strftime("%Y-%m"), "instance": INSTANCE,
        "bytes_before": str(BEFORE_BYTES), "bytes_after": str(AFTER_BYTES), "bytes_reclaimed": str(RECLAIMED_BYTES),
        "currency": CURRENCY, "saving_per_month": str(SAVING), "run_id": run_id,
        "forecast_bytes": "",  # no registry endpoint in this config: no exact forecast
    }
    assert _savings(tmp_path) == [expected_row]
    final_text = (folder / "summary.json").read_text(encoding="utf-8")
    samples_text = (folder / "samples.csv").read_text(encoding="utf-8")
    _, samples = ledger_run_and_samples(raw["ledger"]["url"], run_id)
    assert utc(samples[-2][0]) < utc(run.window_end) <= utc(samples[-1][0])  # pass 3 crossed the end
    assert [(r["time"], int(r["storage_bytes"]), int(r["object_count"]), r["phase"])
            for r in csv_rows(folder / "samples.csv")] == [(iso(t), b, n, p) for t, b, n, p in samples]

    # ---- further passes: no second row, the final figures stay -----------------------------
    # An application pushes after the window closed (new use, no concern of this run).
    _put_object(emu, "docker/registry/v2/blobs/sha256/ff/late/data", b"x" * 4096)
    for advance in (1, 3):
        folders, summary = sampler_pass(advance)
        assert _savings(tmp_path) == [expected_row]
        assert folders == []  # no open window left for the instance
        assert (folder / "summary.json").read_text(encoding="utf-8") == final_text
        assert (folder / "samples.csv").read_text(encoding="utf-8") == samples_text
    run, samples_later = ledger_run_and_samples(raw["ledger"]["url"], run_id)
    assert samples_later == samples
    assert run.state == "COMPLETE" and run.savings_recorded
