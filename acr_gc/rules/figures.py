"""The report's figures: what the bucket measured before and after GC (DESIGN sections 7, 8, 10).

Pure functions, no I/O. Input is the run's storage samples from the ledger as a DataFrame:

===============  ==================  =============================================
column           dtype               meaning
===============  ==================  =============================================
taken_at         datetime64[ns, UTC] the cloud's clock (GetBucketStat response Date)
storage_bytes    int64               bucket storage
object_count     int64               bucket objects
phase            str                 ``before`` (baseline, before the freeze) | ``after``
===============  ==================  =============================================

Decisions, in one place:

* **before_bytes** is the *last* ``before`` sample: the baseline taken closest to the
  freeze (a re-run may have taken more than one).
* **after_bytes**: while the window is open, the *latest* ``after`` sample (provisional).
  Once the window is complete, the *first* ``after`` sample taken at or after
  ``window_end``. The samplers stop at that sample, so this is also the latest one; but
  choosing it explicitly keeps the figure stable when a report is re-rendered later and
  a stray sample exists beyond the window (pushes after the window are no concern of
  this run). Samples later than the chosen one are ignored for every figure.
* **reclaimed_bytes** = before − after. It may be **negative**: more was pushed during
  the window than GC freed. It is reported as is, never clamped; the saving is then 0.
* **reclaimed_pct** = reclaimed / before × 100, rounded half-up to 2 decimals; ``None``
  when before is 0 or unknown.
* **window_complete** = ``now >= window_end`` *and* an ``after`` sample exists at or after
  ``window_end``. "now" is the cloud's clock; when the caller does not know it, the
  latest sample time is the best known cloud time (a sample at or after window_end
  proves the cloud's clock passed it).
* **saving_per_month** = max(reclaimed, 0) / 2^30 × price_per_gb_month, computed exactly
  in decimal arithmetic from the integer bytes and the price as configured (its
  shortest decimal text), and rounded **half-up to 2 decimals** (the currency's minor
  unit) only at the end. GB means 2^30 bytes (DESIGN section 10).
* **growth during the window**: the sum of the increases between consecutive ``after``
  samples (up to the chosen after sample). The bucket is writable again after the
  thaw, so pushes during the window hide part of GC's effect: the report shows this
  figure and says so instead of hiding it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pandas as pd

GIB = 2**30
SAMPLE_COLUMNS = ["taken_at", "storage_bytes", "object_count", "phase"]
# savings.csv (DESIGN section 8): DESIGN's columns in DESIGN's order, then run_id for
# traceability (last, so a sheet reading DESIGN's columns by position still works).
SAVINGS_COLUMNS = [
    "month",
    "instance",
    "bytes_before",
    "bytes_after",
    "bytes_reclaimed",
    "currency",
    "saving_per_month",
    "run_id",
    "forecast_bytes",  # the plan's exact forecast (empty when it was only an upper bound)
]


@dataclass(frozen=True)
class Growth:
    """Storage that grew between two consecutive after samples (pushes during the window)."""

    start: datetime
    end: datetime
    bytes: int


@dataclass(frozen=True)
class StorageFigures:
    before_bytes: int | None
    after_bytes: int | None
    reclaimed_bytes: int | None  # before - after; negative when storage grew
    reclaimed_pct: float | None  # of before, 2 decimals
    reclaimed_gib: float | None  # exact (reclaimed / 2^30); round when displaying
    before_at: datetime | None
    after_at: datetime | None
    samples: int  # every sample of the run (before and after)
    gc_started_at: datetime | None
    gc_finished_at: datetime | None
    window_end: datetime | None
    window_complete: bool
    now: datetime | None
    currency: str
    price_per_gb_month: float
    saving_per_month: float | None  # 2 decimals, half-up; None until reclaimed is known
    bytes_expected: int | None
    bytes_expected_is_upper_bound: bool
    measured_of_expected_pct: float | None  # reclaimed / expected × 100, 2 decimals
    growth_bytes: int
    growth: tuple[Growth, ...] = ()
    charts: int = 0
    not_reclaimable: tuple[str, ...] = ()
    caveats: tuple[str, ...] = field(default=())
    # the exact forecast (plan.bytes_expected, not an upper bound) and measured − forecast in
    # parts that add up to it: (what, bytes), see ``forecast_parts``
    forecast_bytes: int | None = None
    forecast_parts: tuple[tuple[str, int], ...] = ()
    samples_kept_out: int = 0  # statistics whose time went backwards (phase "stale")

    @property
    def provisional(self) -> bool:
        """Figures that may still change: the release window has not closed yet."""
        return not self.window_complete

    @property
    def has_result(self) -> bool:
        return self.reclaimed_bytes is not None


def iso_utc(moment: datetime | None) -> str | None:
    """ISO-8601 UTC with a ``Z``, seconds precision: the summary.json time format."""
    if moment is None:
        return None
    return pd.Timestamp(moment).tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%SZ")


def _utc(moment: Any) -> pd.Timestamp | None:
    if moment is None or (not isinstance(moment, str) and pd.isna(moment)):
        return None
    stamp = pd.Timestamp(moment)
    if stamp.tzinfo is None:
        raise ValueError(f"times must be timezone-aware (got {moment!r})")
    return stamp.tz_convert("UTC")


def _round2(value: Decimal) -> float:
    return float(value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def monthly_saving(reclaimed_bytes: int, price_per_gb_month: float) -> float:
    """max(reclaimed, 0) GiB × price, exact in decimal, rounded half-up to 2 decimals."""
    gib = Decimal(max(int(reclaimed_bytes), 0)) / Decimal(GIB)
    return _round2(gib * Decimal(str(price_per_gb_month)))


STALE_PHASE = "stale"  # a kept-out sample: its statistics went back in time (acr_gc.tasks.sampling)


def normalize_samples(samples: pd.DataFrame | None) -> pd.DataFrame:
    """The samples with the columns above, UTC times, sorted by time (stable)."""
    if samples is None or len(samples) == 0:
        return pd.DataFrame(
            {
                "taken_at": pd.Series([], dtype="datetime64[ns, UTC]"),
                "storage_bytes": pd.Series([], dtype="int64"),
                "object_count": pd.Series([], dtype="int64"),
                "phase": pd.Series([], dtype=object),
            }
        )
    missing = [c for c in SAMPLE_COLUMNS if c not in samples.columns]
    if missing:
        raise ValueError(f"samples lack column(s) {missing}")
    frame = samples[SAMPLE_COLUMNS].copy()
    taken = pd.to_datetime(frame["taken_at"])
    if taken.dt.tz is None:
        raise ValueError("samples.taken_at must be timezone-aware")
    frame["taken_at"] = taken.dt.tz_convert("UTC")
    frame["storage_bytes"] = frame["storage_bytes"].astype("int64")
    frame["object_count"] = frame["object_count"].astype("int64")
    bad = set(frame["phase"]) - {"before", "after", STALE_PHASE}
    if bad:
        raise ValueError(f"samples.phase must be 'before', 'after' or '{STALE_PHASE}' (got {sorted(bad)})")
    return frame.sort_values("taken_at", kind="stable").reset_index(drop=True)


def storage_figures(
    samples: pd.DataFrame | None,
    *,
    gc_started_at: datetime | None,
    gc_finished_at: datetime | None,
    window_end: datetime | None,
    now: datetime | None,
    price_per_gb_month: float,
    currency: str,
    plan: dict | None = None,
    charts: int = 0,
) -> StorageFigures:
    """Every figure of the report from the run's samples (see the module docstring).

    ``plan`` is the summary.json plan block (``bytes_expected`` and
    ``bytes_expected_is_upper_bound`` are used); ``charts`` the number of chart
    repositories of the instance (never reclaimed by GC).
    """
    frame = normalize_samples(samples)
    # answers of GetBucketStat whose figures went back in time: out of the series, counted
    kept_out = int((frame["phase"] == STALE_PHASE).sum())
    frame = frame[frame["phase"] != STALE_PHASE]
    end = _utc(window_end)
    before_rows = frame[frame["phase"] == "before"]
    after_rows = frame[frame["phase"] == "after"]
    latest_known = frame["taken_at"].max() if len(frame) else None
    clock = _utc(now) if now is not None else latest_known

    before = before_rows.iloc[-1] if len(before_rows) else None
    at_or_after_end = after_rows[after_rows["taken_at"] >= end] if end is not None else after_rows.iloc[0:0]
    window_complete = bool(
        end is not None and clock is not None and clock >= end and len(at_or_after_end) > 0
    )
    if window_complete:
        after = at_or_after_end.iloc[0]
    else:
        after = after_rows.iloc[-1] if len(after_rows) else None
    window_afters = after_rows[after_rows["taken_at"] <= after["taken_at"]] if after is not None else after_rows.iloc[0:0]

    before_bytes = int(before["storage_bytes"]) if before is not None else None
    after_bytes = int(after["storage_bytes"]) if after is not None else None
    reclaimed = before_bytes - after_bytes if before_bytes is not None and after_bytes is not None else None
    pct = (
        _round2(Decimal(reclaimed) * 100 / Decimal(before_bytes))
        if reclaimed is not None and before_bytes
        else None
    )
    saving = monthly_saving(reclaimed, price_per_gb_month) if reclaimed is not None else None

    growth = tuple(
        Growth(start=prev.taken_at.to_pydatetime(), end=cur.taken_at.to_pydatetime(), bytes=int(cur.storage_bytes - prev.storage_bytes))
        for prev, cur in zip(window_afters.itertuples(index=False), window_afters.iloc[1:].itertuples(index=False))
        if cur.storage_bytes > prev.storage_bytes
    )
    growth_bytes = sum(g.bytes for g in growth)

    plan = plan or {}
    expected = plan.get("bytes_expected")
    upper = bool(plan.get("bytes_expected_is_upper_bound", False))
    of_expected = (
        _round2(Decimal(reclaimed) * 100 / Decimal(int(expected)))
        if reclaimed is not None and expected
        else None
    )

    not_reclaimable: list[str] = []
    if charts:
        not_reclaimable.append(
            f"{charts} chart repositor{'y' if charts == 1 else 'ies'} (Helm charts): the registry's "
            "clean-up never removes chart versions, so their storage stays."
        )
    if growth_bytes:
        not_reclaimable.append(
            f"{_gib_text(growth_bytes)} of new images were pushed while the storage was being released "
            "(the bucket is open for writes again after the clean-up); that storage is new use, "
            "not a failure of the clean-up, and it reduces the measured saving."
        )
    caveats: list[str] = []
    if reclaimed is not None and not window_complete:
        caveats.append(
            "The release window has not closed yet: storage is still dropping, so these figures are "
            "provisional and the final report will replace them."
        )
    if reclaimed is not None and reclaimed < 0:
        caveats.append(
            "Storage grew during the window by more than the clean-up freed: the measured reclaim is "
            "negative and the saving is shown as 0."
        )
    if kept_out:
        caveats.append(
            f"{kept_out} storage statistics answer{'s' if kept_out != 1 else ''} went back in time (OSS "
            "statistics lag and are not always read from the latest computation): kept out of the series."
        )
    if upper and expected:
        caveats.append(
            "The expected amount is an upper bound: for some images the layer sizes were unknown (no "
            "registry endpoint configured, or manifests that could not be read, which "
            "unreadable_manifests.csv names), so "
            "their whole size was counted."
        )

    forecast_bytes = int(expected) if expected is not None and not upper else None
    parts = (
        forecast_parts(reclaimed - forecast_bytes, plan.get("bytes_unreferenced_before"), growth_bytes)
        if forecast_bytes is not None and reclaimed is not None else ()
    )

    return StorageFigures(
        before_bytes=before_bytes,
        after_bytes=after_bytes,
        reclaimed_bytes=reclaimed,
        reclaimed_pct=pct,
        reclaimed_gib=reclaimed / GIB if reclaimed is not None else None,
        before_at=before["taken_at"].to_pydatetime() if before is not None else None,
        after_at=after["taken_at"].to_pydatetime() if after is not None else None,
        samples=int(len(frame)),
        gc_started_at=_py(_utc(gc_started_at)),
        gc_finished_at=_py(_utc(gc_finished_at)),
        window_end=_py(end),
        window_complete=window_complete,
        now=_py(clock),
        currency=currency,
        price_per_gb_month=float(price_per_gb_month),
        saving_per_month=saving,
        bytes_expected=int(expected) if expected is not None else None,
        bytes_expected_is_upper_bound=upper,
        measured_of_expected_pct=of_expected,
        growth_bytes=int(growth_bytes),
        growth=growth,
        charts=int(charts or 0),
        not_reclaimable=tuple(not_reclaimable),
        caveats=tuple(caveats),
        forecast_bytes=forecast_bytes,
        forecast_parts=parts,
        samples_kept_out=kept_out,
    )


def forecast_parts(difference: int, unreferenced_before: int | None, growth_bytes: int) -> tuple[tuple[str, int], ...]:
    """measured − forecast, explained: the blobs already unreferenced before the run (GC frees
    them too; the tag-based forecast does not count them), minus what pushes during the window
    added, and the rest: tag links and objects outside the registry's blob layout (written or
    removed meanwhile), and storage statistics that lag the bucket. The parts sum to ``difference``."""
    unreferenced = int(unreferenced_before or 0)
    rest = difference - unreferenced + int(growth_bytes)
    return (
        ("data already unreferenced before the run", unreferenced),
        ("pushes during the window", -int(growth_bytes)),
        ("tag links, objects outside the registry layout and the statistics delay", rest),
    )


def _py(stamp: pd.Timestamp | None) -> datetime | None:
    return stamp.to_pydatetime() if stamp is not None else None


def _gib_text(n: int) -> str:
    return f"{n / GIB:,.2f} GiB"


def summary_storage_block(figures: StorageFigures) -> dict:
    """summary.json ``storage`` (DESIGN section 10), exactly these keys."""
    return {
        "before_bytes": figures.before_bytes,
        "after_bytes": figures.after_bytes,
        "reclaimed_bytes": figures.reclaimed_bytes,
        "reclaimed_pct": figures.reclaimed_pct,
        "samples": figures.samples,
        "window_end": iso_utc(figures.window_end),
        "window_complete": figures.window_complete,
    }


def summary_cost_block(figures: StorageFigures) -> dict:
    """summary.json ``cost`` (DESIGN section 10), exactly these keys."""
    return {
        "currency": figures.currency,
        "price_per_gb_month": figures.price_per_gb_month,
        "saving_per_month": figures.saving_per_month,
    }


def savings_row(figures: StorageFigures, *, instance_id: str, run_id: str) -> dict:
    """One savings.csv row (columns :data:`SAVINGS_COLUMNS`, in that order).

    ``month`` is the YYYY-MM (UTC) of GC's finish: the month whose clean-up earned the
    saving. Only a finished window belongs in savings.csv; the caller checks
    ``figures.window_complete`` (see ``acr_gc.reports.build.finalize_savings``).
    """
    if figures.reclaimed_bytes is None:
        raise ValueError("no before/after storage figures: nothing to record in savings.csv")
    finished = figures.gc_finished_at or figures.window_end
    if finished is None:
        raise ValueError("no GC finish time: cannot tell the month of the saving")
    row = {
        "month": pd.Timestamp(finished).tz_convert("UTC").strftime("%Y-%m"),
        "instance": instance_id,
        "bytes_before": figures.before_bytes,
        "bytes_after": figures.after_bytes,
        "bytes_reclaimed": figures.reclaimed_bytes,
        "currency": figures.currency,
        "saving_per_month": figures.saving_per_month,
        "run_id": run_id,
        "forecast_bytes": figures.forecast_bytes,
    }
    return {column: row[column] for column in SAVINGS_COLUMNS}
