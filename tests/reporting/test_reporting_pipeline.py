"""A full inline run on the hand-worked instance cri-rep: the report's figures equal the
hand-worked bytes AND the emulator's ground truth (DESIGN sections 7, 8, 10; issue 5).

Real parts only: the emulator as a subprocess with compressed days (one emulated day =
one real second), the real ACR and OSS SDKs, ``reclaim_storage`` on the session's real
Prefect server. The arithmetic is in reporting_support.py, in comments beside the numbers.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from emulator_kit import new_emulator
from reporting_support import (
    AFTER_BYTES,
    AFTER_OBJECTS,
    BEFORE_BYTES,
    BEFORE_OBJECTS,
    CURRENCY,
    EXPIRED,
    INSTANCE,
    MARGIN_DAYS,
    NONCURRENT_DAYS,
    PRICE,
    RECLAIMED_BYTES,
    RECLAIMED_PCT,
    RETAINED,
    SAVING,
    bucket_truth,
    config_dict,
    csv_rows,
    iso,
    ledger_run_and_samples,
    saving_half_up,
    summary_of,
    use_keys,
    utc,
)

pytestmark = pytest.mark.slow

DAY_SECONDS = 1.0  # one emulated day per real second: the 4-day window takes ~4 s


@pytest.fixture(scope="module")
def emu():
    from reporting_support import dataset

    with new_emulator(dataset(), day_seconds=DAY_SECONDS, gc_tags_per_second=50) as process:
        yield process


def test_inline_run_reports_handworked_bytes_equal_to_ground_truth(emu, prefect_api_url, tmp_path, monkeypatch):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    from acr_gc.config import Config
    from acr_gc.flows.reclaim import reclaim_storage
    from acr_gc.reports.files import new_run_id
    from acr_gc.reports.summary import Summary
    from reporting_support import dataset

    emu.load(dataset())
    truth_before = bucket_truth(emu)
    # The dataset is what the arithmetic says, before anything runs.
    assert (truth_before["storage_bytes"], truth_before["noncurrent_bytes"]) == (BEFORE_BYTES, 0)
    assert truth_before["objects"] == BEFORE_OBJECTS

    config = config_dict(emu, tmp_path, "inline", day_length=DAY_SECONDS)
    use_keys(monkeypatch)
    run_id = new_run_id()
    state = reclaim_storage(Config.model_validate(config), run_id=run_id, return_state=True)
    truth_after = emu.truth()
    folder = tmp_path / "out" / INSTANCE / run_id

    assert state.is_completed(), state.message
    summary = summary_of(folder)
    Summary.model_validate(summary)
    assert summary["state"] == "COMPLETE"
    assert state.result(raise_on_failure=False)["state"] == "COMPLETE"
    assert summary["plan"]["tags_expired"] == len(EXPIRED) == summary["gc"]["tags_deleted"]
    checks = dict(summary["checks"])
    assert "any-retains/count-or-match/full" in checks.pop("readings_consistent")  # issue 11: the reading played
    assert checks == {"unexpected_deletions": 0, "missed_deletions": 0, "freeze_restored": True}
    assert truth_after["instances"][INSTANCE]["tags"] == RETAINED

    # ---- the storage figures: by hand, and the emulator's truth ---------------------------
    storage = summary["storage"]
    bucket_after = truth_after["buckets"]["cri-rep-storage"]
    assert storage["before_bytes"] == BEFORE_BYTES == truth_before["storage_bytes"]
    assert storage["after_bytes"] == AFTER_BYTES == bucket_after["storage_bytes"]
    assert bucket_after["noncurrent_bytes"] == 0 and bucket_after["objects"] == AFTER_OBJECTS  # all released
    assert storage["reclaimed_bytes"] == RECLAIMED_BYTES
    assert storage["reclaimed_bytes"] == storage["before_bytes"] - storage["after_bytes"]
    assert storage["reclaimed_pct"] == RECLAIMED_PCT
    assert storage["window_complete"] is True

    # The window: GC's finish (emulated clock, in the ledger) + noncurrent_days + margin.
    run, samples = ledger_run_and_samples(config["ledger"]["url"], run_id)
    finished = utc(run.gc_finished_at)
    assert storage["window_end"] == iso(finished + timedelta(days=NONCURRENT_DAYS + MARGIN_DAYS))

    # ---- money -----------------------------------------------------------------------------
    assert summary["cost"] == {"currency": CURRENCY, "price_per_gb_month": PRICE, "saving_per_month": SAVING}
    assert SAVING == saving_half_up(storage["reclaimed_bytes"], PRICE)

    # ---- the samples: ledger, samples.csv and summary agree -------------------------------
    assert storage["samples"] == len(samples) >= 3
    assert samples[0][1:] == (BEFORE_BYTES, BEFORE_OBJECTS, "before")
    assert [s[3] for s in samples[1:]] == ["after"] * (len(samples) - 1)
    assert samples[-1][1:3] == (AFTER_BYTES, AFTER_OBJECTS)
    # sampling stopped at the first sample at/after the window's end (the ledger's exact time)
    assert utc(samples[-2][0]) < utc(run.window_end) <= utc(samples[-1][0])
    rows = csv_rows(folder / "samples.csv")
    assert [(r["time"], int(r["storage_bytes"]), int(r["object_count"]), r["phase"]) for r in rows] == [
        (iso(t), b, n, p) for t, b, n, p in samples
    ]

    # ---- files -------------------------------------------------------------------------------
    for name in ("summary.json", "plan.csv", "deleted_tags.csv", "samples.csv", "report.html", "report.md"):
        assert (folder / name).stat().st_size > 0, name
    assert (folder / "storage.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(r["tag"] for r in csv_rows(folder / "deleted_tags.csv")) == EXPIRED
    assert "2.56 USD" in (folder / "report.html").read_text(encoding="utf-8")
    assert "2.56 USD" in (folder / "report.md").read_text(encoding="utf-8")

    # ---- savings.csv: one row, the summary's figures ---------------------------------------
    savings = csv_rows(tmp_path / "out" / "savings.csv")
    assert savings == [{
        "month": finished.strftime("%Y-%m"), "instance": INSTANCE,
        "bytes_before": str(BEFORE_BYTES), "bytes_after": str(AFTER_BYTES), "bytes_reclaimed": str(RECLAIMED_BYTES),
        "currency": CURRENCY, "saving_per_month": str(SAVING), "run_id": run_id,
        "forecast_bytes": "",  # no registry endpoint in this config: no exact forecast
    }]
    assert run.state == "COMPLETE" and run.savings_recorded

    # ---- the Prefect artifacts on this flow run (read back from the server) ----------------
    flow_run_id = state.state_details.flow_run_id
    assert str(flow_run_id) == run.flow_run_id
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    by_key = {}
    for artifact in artifacts:
        by_key.setdefault(artifact.key, []).append(artifact)
    kinds = ("report", "namespaces", "report-link", "storage-chart")
    assert set(by_key) >= {f"acr-gc-{kind}-{INSTANCE}" for kind in kinds}
    report_md = by_key[f"acr-gc-report-{INSTANCE}"][-1]
    assert report_md.type == "markdown" and "2.56 USD" in report_md.data
    assert by_key[f"acr-gc-namespaces-{INSTANCE}"][-1].type == "table"
    link = by_key[f"acr-gc-report-link-{INSTANCE}"][-1]
    assert (folder / "report.html").resolve().as_uri() in link.data
    assert by_key[f"acr-gc-storage-chart-{INSTANCE}"][-1].type == "image"


STAT_DELAY_HOURS = 30


def test_delayed_statistics_full_run_is_complete_and_timed_by_last_modified(emu, prefect_api_url, tmp_path,
                                                                            monkeypatch):
    """Issue 12 item 7: with `--stat-delay-hours 30` GetBucketStat answers the figures of 30
    emulated hours ago, with that LastModifiedTime. The run still ends COMPLETE with the
    hand-worked before/after, each equal to the emulator's truth at the sample's time.

    Two things make the lag matter here. An application writes an object just before the
    run: "before" must include it, so the baseline has to wait until the figures cover the
    run (30 h stale figures would miss it). And margin_days is 0, so the window ends just
    as the noncurrent versions are released: closing on a request after the end would read
    figures from 30 h before it, still billed; only figures dated after the end show the
    release."""
    from datetime import datetime

    from acr_gc.cloud.credentials import from_keys
    from acr_gc.cloud.oss import OssClient
    from acr_gc.config import Config, Target
    from acr_gc.flows.reclaim import reclaim_storage
    from acr_gc.reports.files import new_run_id
    from reporting_support import BUCKET, CLOCK, WRITER_AK, WRITER_SECRET, dataset

    pushed = 4_321
    emu.load(dataset())
    emu.set_faults(stat_delay_hours=STAT_DELAY_HOURS)  # as `emulator serve --stat-delay-hours 30`
    try:
        writer = OssClient(Target(instance_id=INSTANCE, bucket=BUCKET, oss_endpoint=emu.oss_endpoint),
                           credentials=from_keys(WRITER_AK, WRITER_SECRET))
        writer.put_object("exports/late.csv", b"x" * pushed)  # just before the run
        config = config_dict(emu, tmp_path, "inline", day_length=DAY_SECONDS)
        config["sampling"]["margin_days"] = 0
        use_keys(monkeypatch)
        run_id = new_run_id()
        state = reclaim_storage(Config.model_validate(config), run_id=run_id, return_state=True)
        run, samples = ledger_run_and_samples(config["ledger"]["url"], run_id)
        at = {iso(t): emu.truth(at=iso(t))["buckets"]["cri-rep-storage"]["stat_at"] for t, *_ in samples}
    finally:
        emu.set_faults(stat_delay_hours=0)

    assert state.is_completed(), state.message
    summary = summary_of(tmp_path / "out" / INSTANCE / run_id)
    assert summary["state"] == "COMPLETE" and summary["storage"]["window_complete"] is True
    assert summary["storage"]["before_bytes"] == BEFORE_BYTES + pushed
    assert summary["storage"]["after_bytes"] == AFTER_BYTES + pushed
    assert summary["storage"]["reclaimed_bytes"] == RECLAIMED_BYTES

    series = [s for s in samples if s[3] != "stale"]
    before, closing = series[0], series[-1]
    assert before[3] == "before" and closing[3] == "after"
    # each sample is the emulator's truth at its own time (the figures' LastModifiedTime)
    for taken_at, storage_bytes, objects, _phase in series:
        assert (storage_bytes, objects) == (at[iso(taken_at)]["storage_bytes"], at[iso(taken_at)]["objects"])
    assert (before[1], before[2]) == (BEFORE_BYTES + pushed, BEFORE_OBJECTS + 1)
    assert (closing[1], closing[2]) == (AFTER_BYTES + pushed, AFTER_OBJECTS + 1)
    # the baseline covers the run: its figures are not those of 30 hours before the load
    loaded = datetime.fromisoformat(CLOCK.replace("Z", "+00:00"))
    assert utc(before[0]) >= loaded
    assert utc(before[0]) <= utc(run.gc_started_at)  # and they predate GC's deletions
    # the window closed on figures from after its end, not on a request after it
    assert utc(closing[0]) >= utc(run.window_end)
    assert all(utc(s[0]) < utc(run.window_end) for s in series[:-1])
    times = [utc(s[0]) for s in series]
    assert times == sorted(times)  # a series that only moves forward
