"""The report's figures on hand-worked samples (no I/O).

The samples, in GiB (1 GiB = 2^30 = 1073741824 bytes), window_end = T0 + 5 days:

    T0 - 1d   before  9.00   an older baseline (a re-run): not the one used
    T0 - 1h   before 10.00   the baseline: before = 10 GiB
    GC runs T0 .. T0 + 2h
    T0 + 3h   after   9.50
    T0 + 1d   after   8.00
    T0 + 2d   after   7.00
    T0 + 3d   after   7.25   +0.25 GiB pushed during the window
    T0 + 4d   after   6.75
    T0 + 5d   after   6.50   the first sample at window_end: after = 6.5 GiB
    T0 + 6d   after   8.00   a stray sample after the window: ignored once complete

Complete: reclaimed = 10 - 6.5 = 3.5 GiB = 3758096384 bytes, 35.00 % of before;
at 0.12 CNY/GiB/month: 3.5 × 0.12 = 0.42 CNY per month; growth 0.25 GiB = 268435456.
Provisional at T0 + 4.5d (samples up to T0 + 4d): after = 6.75, reclaimed 3.25 GiB =
3489660928 bytes, 32.50 %, 3.25 × 0.12 = 0.39.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest

from acr_gc.reports.summary import CostSummary, StorageSummary
from acr_gc.rules.figures import (
    SAVINGS_COLUMNS,
    monthly_saving,
    savings_row,
    storage_figures,
    summary_cost_block,
    summary_storage_block,
)

GIB = 1073741824
T0 = datetime(2024, 6, 10, tzinfo=timezone.utc)
END = T0 + timedelta(days=5)

SAMPLES = [
    (T0 - timedelta(days=1), 9.00, "before"),
    (T0 - timedelta(hours=1), 10.00, "before"),
    (T0 + timedelta(hours=3), 9.50, "after"),
    (T0 + timedelta(days=1), 8.00, "after"),
    (T0 + timedelta(days=2), 7.00, "after"),
    (T0 + timedelta(days=3), 7.25, "after"),
    (T0 + timedelta(days=4), 6.75, "after"),
    (T0 + timedelta(days=5), 6.50, "after"),
    (T0 + timedelta(days=6), 8.00, "after"),
]


def frame(rows) -> pd.DataFrame:
    # shuffled on purpose: the figures must not depend on the row order
    data = [
        {"taken_at": t, "storage_bytes": int(g * GIB), "object_count": 1000 + i, "phase": p}
        for i, (t, g, p) in enumerate(rows)
    ]
    return pd.DataFrame(data[::-1])


def figures(rows=SAMPLES, now=None, price=0.12, currency="CNY", plan=None, charts=0, end=END):
    return storage_figures(
        frame(rows),
        gc_started_at=T0,
        gc_finished_at=T0 + timedelta(hours=2),
        window_end=end,
        now=now,
        price_per_gb_month=price,
        currency=currency,
        plan=plan,
        charts=charts,
    )


def test_complete_window_hand_worked():
    f = figures(now=T0 + timedelta(days=6))
    assert f.before_bytes == 10737418240  # the LAST before sample, not the older 9 GiB one
    assert f.after_bytes == 6979321856  # first sample at window_end, not the stray later one
    assert f.reclaimed_bytes == 3758096384 == f.before_bytes - f.after_bytes
    assert f.reclaimed_pct == 35.0
    assert f.reclaimed_gib == 3.5
    assert f.window_complete is True
    assert f.saving_per_month == 0.42
    assert f.samples == 9
    assert f.after_at == END


def test_growth_during_the_window_is_detected():
    f = figures(now=T0 + timedelta(days=6))
    assert f.growth_bytes == 268435456  # 7.00 -> 7.25; the stray 6.5 -> 8 is after the window
    assert [(g.start, g.end, g.bytes) for g in f.growth] == [(T0 + timedelta(days=2), T0 + timedelta(days=3), 268435456)]
    assert any("pushed" in note and "0.25 GiB" in note for note in f.not_reclaimable)


def test_window_not_complete_before_its_end():
    rows = [r for r in SAMPLES if r[0] <= T0 + timedelta(days=4)]
    f = figures(rows, now=T0 + timedelta(days=4, hours=12))
    assert f.window_complete is False
    assert f.after_bytes == int(6.75 * GIB)  # the latest sample while the window is open
    assert f.reclaimed_bytes == 3489660928
    assert f.reclaimed_pct == 32.5
    assert f.saving_per_month == 0.39  # 3.25 GiB x 0.12, provisional
    assert any("provisional" in c for c in f.caveats)


def test_window_complete_exactly_at_its_end_with_a_sample_there():
    rows = [r for r in SAMPLES if r[0] <= END]
    assert figures(rows, now=END).window_complete is True
    assert figures(rows, now=END - timedelta(seconds=1)).window_complete is False
    # now defaults to the latest sample time: the sample at END proves the clock passed it
    assert figures(rows, now=None).window_complete is True


def test_window_not_complete_without_a_sample_at_or_after_its_end():
    rows = [r for r in SAMPLES if r[0] < END]
    f = figures(rows, now=END + timedelta(days=3))
    assert f.window_complete is False
    assert f.after_bytes == int(6.75 * GIB)


def test_no_window_end_is_never_complete():
    f = figures(end=None, now=T0 + timedelta(days=30))
    assert f.window_complete is False
    assert f.after_bytes == 8 * GIB  # the latest after sample


def test_saving_is_reclaimed_gib_times_price_rounded_half_up():
    assert monthly_saving(GIB, 0.125) == 0.13  # Python's round(0.125, 2) gives 0.12
    assert monthly_saving(GIB + GIB // 2, 0.35) == 0.53  # 1.5 x 0.35 = 0.525 exactly
    assert monthly_saving(100 * GIB, 0.12) == 12.0
    assert monthly_saving(-5 * GIB, 0.12) == 0.0
    assert monthly_saving(0, 0.12) == 0.0


def test_negative_reclaim_is_reported_not_hidden():
    rows = [(T0 - timedelta(hours=1), 5.0, "before"), (T0 + timedelta(days=5), 6.0, "after")]
    f = figures(rows, now=END)
    assert f.reclaimed_bytes == -GIB
    assert f.reclaimed_pct == -20.0
    assert f.saving_per_month == 0.0
    assert any("negative" in c for c in f.caveats)


def test_before_only_has_no_result():
    f = figures([(T0 - timedelta(hours=1), 10.0, "before")], now=END)
    assert (f.before_bytes, f.after_bytes, f.reclaimed_bytes, f.reclaimed_pct, f.saving_per_month) == (
        10 * GIB, None, None, None, None)
    assert f.window_complete is False


def test_expected_versus_measured_and_notes():
    f = figures(
        now=END,
        plan={"bytes_expected": 4 * GIB, "bytes_expected_is_upper_bound": True},
        charts=3,
    )
    assert f.bytes_expected == 4 * GIB
    assert f.bytes_expected_is_upper_bound is True
    assert f.measured_of_expected_pct == 87.5  # 3.5 / 4
    assert any("3 chart repositories" in n for n in f.not_reclaimable)
    assert any("upper bound" in c for c in f.caveats)


def test_summary_blocks_are_the_contract():
    f = figures(now=END, price=0.12, currency="CNY")
    storage = summary_storage_block(f)
    assert storage == {
        "before_bytes": 10737418240,
        "after_bytes": 6979321856,
        "reclaimed_bytes": 3758096384,
        "reclaimed_pct": 35.0,
        "samples": 9,
        "window_end": "2024-06-15T00:00:00Z",
        "window_complete": True,
    }
    assert StorageSummary(**storage).model_dump() == storage
    cost = summary_cost_block(f)
    assert cost == {"currency": "CNY", "price_per_gb_month": 0.12, "saving_per_month": 0.42}
    assert CostSummary(**cost).model_dump() == cost


def test_savings_row_columns_and_month():
    row = savings_row(figures(now=END), instance_id="cri-demo", run_id="r-1")
    assert list(row) == SAVINGS_COLUMNS == [
        "month", "instance", "bytes_before", "bytes_after", "bytes_reclaimed", "currency", "saving_per_month", "run_id",
        "forecast_bytes",
    ]
    assert row == {
        "month": "2024-06",
        "instance": "cri-demo",
        "bytes_before": 10737418240,
        "bytes_after": 6979321856,
        "bytes_reclaimed": 3758096384,
        "currency": "CNY",
        "saving_per_month": 0.42,
        "run_id": "r-1",
        "forecast_bytes": None,
    }
    with pytest.raises(ValueError):
        savings_row(figures([(T0, 1.0, "before")], now=END), instance_id="x", run_id="y")


def test_naive_times_are_refused():
    bad = pd.DataFrame([{"taken_at": datetime(2024, 6, 1), "storage_bytes": 1, "object_count": 1, "phase": "before"}])
    with pytest.raises(ValueError):
        storage_figures(bad, gc_started_at=None, gc_finished_at=None, window_end=None, now=None,
                        price_per_gb_month=0.1, currency="CNY")
