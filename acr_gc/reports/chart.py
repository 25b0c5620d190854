"""The storage chart (``storage.png``): bucket storage over time, for people, not engineers.

Storage in GiB over the cloud's dates; vertical markers for GC start, GC end and the
expected release date (window end); dashed levels for the storage before and after.
matplotlib's Agg backend only (no display, no global pyplot state), so it is safe in a
worker thread. matplotlib is imported when a chart is drawn, not when this module is: the
flows import the report code, and `acr-gc plan` (which draws no chart) would otherwise
pay ~0.3-0.6 s of matplotlib imports before its first API call (issue 16).
"""

from __future__ import annotations

import io

import pandas as pd

from acr_gc.rules.figures import GIB, StorageFigures, normalize_samples

_BEFORE_COLOR = "#8a8f98"
_AFTER_COLOR = "#1a7f37"
_LINE_COLOR = "#0b5cad"


def storage_chart(samples: pd.DataFrame | None, figures: StorageFigures, title: str | None = None) -> bytes:
    """The chart as PNG bytes."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.dates as mdates
    from matplotlib.figure import Figure

    frame = normalize_samples(samples)
    fig = Figure(figsize=(10, 5), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    times = [t.to_pydatetime() for t in frame["taken_at"]]
    gib = (frame["storage_bytes"] / GIB).tolist()
    if times:
        ax.plot(times, gib, color=_LINE_COLOR, marker="o", markersize=4, linewidth=2, label="Storage (measured)")
    if figures.before_bytes is not None:
        ax.axhline(figures.before_bytes / GIB, color=_BEFORE_COLOR, linestyle="--", linewidth=1.2,
                   label=f"Before clean-up: {figures.before_bytes / GIB:,.2f} GiB")
    if figures.after_bytes is not None:
        ax.axhline(figures.after_bytes / GIB, color=_AFTER_COLOR, linestyle="--", linewidth=1.2,
                   label=f"After{' (so far)' if figures.provisional else ''}: {figures.after_bytes / GIB:,.2f} GiB")
    markers = [
        (figures.gc_started_at, "#b35900", ":", "Clean-up started"),
        (figures.gc_finished_at, "#7a3db8", ":", "Clean-up finished"),
        (figures.window_end, "#c0392b", "-.", "Expected release date"),
    ]
    for moment, color, style, label in markers:
        if moment is not None:
            ax.axvline(moment, color=color, linestyle=style, linewidth=1.5, label=f"{label} ({moment:%Y-%m-%d})")
    if not times and all(m[0] is None for m in markers):
        ax.text(0.5, 0.5, "No storage measurements yet", ha="center", va="center", transform=ax.transAxes)
    ax.set_title(title or "Registry storage over time", fontsize=14)
    ax.set_xlabel("Date (UTC)")
    ax.set_ylabel("Storage (GiB)")
    ax.grid(True, alpha=0.3)
    ax.set_ylim(bottom=0)
    locator = mdates.AutoDateLocator(minticks=3, maxticks=10)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="lower left", fontsize=9, framealpha=0.9)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()
