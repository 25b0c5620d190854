"""Forecast against measured in the report figures: the difference explained in parts that add up."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pandas as pd

from acr_gc.reports.render import headline
from acr_gc.rules.figures import savings_row, storage_figures

GIB = 2**30
T0 = datetime(2024, 6, 10, tzinfo=timezone.utc)
# before 10 GiB; after GC storage drops to 7 GiB, then a push adds 0.25 GiB, then the release
# goes on to 6.5 GiB: reclaimed 3.5 GiB with 0.25 GiB of pushes inside it (worked by hand)
SAMPLES = [(T0 - timedelta(hours=1), 10.0, "before"), (T0 + timedelta(days=1), 7.0, "after"),
           (T0 + timedelta(days=2), 7.25, "after"), (T0 + timedelta(days=5), 6.5, "after")]


def figures(plan):
    frame = pd.DataFrame([{"taken_at": t, "storage_bytes": int(g * GIB), "object_count": 1, "phase": p}
                          for t, g, p in SAMPLES])
    return storage_figures(frame, gc_started_at=T0, gc_finished_at=T0 + timedelta(hours=1),
                           window_end=T0 + timedelta(days=5), now=T0 + timedelta(days=6),
                           price_per_gb_month=0.12, currency="CNY", plan=plan)


def test_parts_add_up_to_the_difference_with_pushes_during_the_window():
    plan = {"bytes_expected": 3 * GIB, "bytes_expected_is_upper_bound": False, "bytes_unreferenced_before": GIB // 2}
    f = figures(plan)
    assert f.reclaimed_bytes == int(3.5 * GIB) and f.forecast_bytes == 3 * GIB
    parts = dict(f.forecast_parts)
    assert parts["data already unreferenced before the run"] == GIB // 2
    assert parts["pushes during the window"] == -GIB // 4
    assert sum(parts.values()) == f.reclaimed_bytes - f.forecast_bytes
    # forecast 3 + unreferenced 0.5 − pushes 0.25 = 3.25; measured 3.5: 0.25 GiB left to the rest
    assert parts["tag links, objects outside the registry layout and the statistics delay"] == GIB // 4
    assert "(35.00%) against a forecast of 3.00 GiB — saving" in headline(f)
    assert savings_row(f, instance_id="i", run_id="r")["forecast_bytes"] == 3 * GIB


def test_an_upper_bound_is_no_forecast():
    f = figures({"bytes_expected": 3 * GIB, "bytes_expected_is_upper_bound": True})
    assert f.forecast_bytes is None and f.forecast_parts == () and "forecast" not in headline(f)
