"""Writing the report files of a run (DESIGN section 8) from already computed figures.

``samples.csv``, ``storage.png``, ``report.md`` and ``report.html`` go into the run folder;
``append_savings_row`` adds to the roll-up ``<out_dir>/savings.csv``. No figure is
computed here (that is :mod:`acr_gc.rules.figures`); this module only formats.

``report.html`` is self-contained: inline CSS, the chart as a ``data:`` URI, no script,
no external request. Templates are jinja2 with autoescape ON for HTML, so tag and
namespace names that look like markup are shown, never run. ``report.md`` escapes
markdown and HTML specials in every value it did not write itself.
"""

from __future__ import annotations

import base64
import fcntl
import io
import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Iterator

import pandas as pd
from jinja2 import Environment, PackageLoader, StrictUndefined

from acr_gc.reports.chart import storage_chart
from acr_gc.reports.files import _atomic_write, csv_text, write_csv
from acr_gc.rules.figures import GIB, SAVINGS_COLUMNS, StorageFigures, normalize_samples
from acr_gc.ledger.states import RunState

SAMPLES_CSV_COLUMNS = ["time", "storage_bytes", "object_count", "phase"]
NAMESPACE_COLUMNS = ["namespace", "tags", "expired", "unregenerable", "expected_bytes"]


@dataclass
class ReportInput:
    """What a report shows about one run; the figures are computed by the caller."""

    run_id: str
    instance_id: str
    bucket: str
    state: RunState
    figures: StorageFigures
    samples: pd.DataFrame | None = None
    region: str | None = None
    message: str | None = None
    plan: dict | None = None
    gc: dict = field(default_factory=dict)
    checks: dict = field(default_factory=dict)
    namespaces: pd.DataFrame | None = None  # NAMESPACE_COLUMNS
    approval: dict | None = None  # approved, answered_by, reason, via, answered_at (approval.required)
    # lifecycle rules deleting tags by themselves before GC (rules.running_by_themselves):
    # rule_id, scope, next_time
    rules_by_themselves: list[dict] = field(default_factory=list)


@dataclass(frozen=True)
class ReportFiles:
    folder: Path
    samples_csv: Path
    chart_png: Path
    markdown: Path
    html: Path


# ---- formatting -------------------------------------------------------------------------

def gib(n: int | float | None) -> str:
    return "—" if n is None else f"{n / GIB:,.2f} GiB"


def nbytes(n: int | None) -> str:
    return "—" if n is None else f"{n:,}"


def pct(p: float | None) -> str:
    return "—" if p is None else f"{p:,.2f}%"


def money(amount: float | None, currency: str) -> str:
    return "—" if amount is None else f"{amount:,.2f} {currency}"


def when(moment: datetime | None) -> str:
    return "—" if moment is None else f"{pd.Timestamp(moment).tz_convert('UTC'):%Y-%m-%d %H:%M} UTC"


def day(moment: datetime | None) -> str:
    return "—" if moment is None else f"{pd.Timestamp(moment).tz_convert('UTC'):%Y-%m-%d}"


def headline(figures: StorageFigures, state: RunState = RunState.GC_DONE) -> str:
    """The one sentence finance reads first."""
    if figures.reclaimed_bytes is None:
        if state in (RunState.BLOCKED, RunState.FAILED, RunState.CANCELED):
            return f"No storage was reclaimed: the run ended {state}"
        return "No storage figures yet: the clean-up has not been measured"
    if figures.reclaimed_bytes < 0:
        return (
            f"Storage grew by {gib(-figures.reclaimed_bytes)} ({pct(-(figures.reclaimed_pct or 0.0))}) "
            f"— no saving ({money(0.0, figures.currency)} per month)"
        )
    forecast = f" against a forecast of {gib(figures.forecast_bytes)}" if figures.forecast_bytes is not None else ""
    return (
        f"Reclaimed {gib(figures.reclaimed_bytes)} ({pct(figures.reclaimed_pct)}){forecast} "
        f"— saving {money(figures.saving_per_month, figures.currency)} per month"
    )


_MD_SPECIALS = str.maketrans({
    "\\": "\\\\", "|": "\\|", "*": "\\*", "_": "\\_", "`": "\\`", "[": "\\[", "]": "\\]",
    "#": "\\#", "~": "\\~", "<": "&lt;", ">": "&gt;", "&": "&amp;", "\n": " ", "\r": " ",
})


def md_escape(value) -> str:
    """A value safe inside markdown text and table cells (no markup, no HTML, no pipes;
    ``~`` too: GFM, as the Prefect UI renders it, strikes ``~~text~~`` through)."""
    return str(value).translate(_MD_SPECIALS)


def _environment(autoescape: bool) -> Environment:
    env = Environment(
        loader=PackageLoader("acr_gc.reports", "templates"),
        autoescape=autoescape,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(gib=gib, nbytes=nbytes, pct=pct, when=when, day=day, md=md_escape)
    return env


_HTML = _environment(autoescape=True)
_MD = _environment(autoescape=False)


def _namespace_rows(namespaces: pd.DataFrame | None) -> list[dict]:
    if namespaces is None or len(namespaces) == 0:
        return []
    frame = namespaces.reindex(columns=NAMESPACE_COLUMNS).fillna(0)
    return [
        {
            "namespace": str(r.namespace),
            "tags": int(r.tags),
            "expired": int(r.expired),
            "unregenerable": int(r.unregenerable),
            "expected_bytes": int(r.expected_bytes),
        }
        for r in frame.sort_values("namespace", kind="stable").itertuples(index=False)
    ]


def _context(report: ReportInput, image_src: str) -> dict:
    f = report.figures
    plan = report.plan or {}
    return {
        "r": report,
        "f": f,
        "plan": plan,
        "gc": report.gc or {},
        "checks": report.checks or {},
        "headline": headline(f, report.state),
        "saving_text": money(f.saving_per_month, f.currency),
        "price_text": money(f.price_per_gb_month, f.currency) + " per GiB per month",
        "namespaces": _namespace_rows(report.namespaces),
        "image_src": image_src,
        "final": f.window_complete,
    }


def render_markdown(report: ReportInput, image_src: str = "storage.png") -> str:
    """report.md; ``image_src`` is where the chart is (the file beside it, or a data URI)."""
    return _MD.get_template("report.md.j2").render(**_context(report, image_src))


def render_html(report: ReportInput, chart_png: bytes) -> str:
    """report.html, self-contained: the chart travels inside as a data URI."""
    uri = "data:image/png;base64," + base64.b64encode(chart_png).decode("ascii")
    return _HTML.get_template("report.html.j2").render(**_context(report, uri))


def samples_csv_frame(samples: pd.DataFrame | None) -> pd.DataFrame:
    """samples.csv rows: time (ISO-8601 UTC), storage_bytes, object_count, phase; by time."""
    frame = normalize_samples(samples)
    out = pd.DataFrame(
        {
            "time": frame["taken_at"].dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "storage_bytes": frame["storage_bytes"],
            "object_count": frame["object_count"],
            "phase": frame["phase"],
        }
    )
    return out[SAMPLES_CSV_COLUMNS]


def write_report(folder: Path, report: ReportInput) -> ReportFiles:
    """samples.csv, storage.png, report.md and report.html into ``folder`` (atomic writes)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    samples_path = write_csv(samples_csv_frame(report.samples), folder / "samples.csv")
    png = storage_chart(report.samples, report.figures, title=f"Registry storage — {report.instance_id}")
    chart_path = folder / "storage.png"
    _atomic_write_bytes(chart_path, png)
    md_path = folder / "report.md"
    _atomic_write(md_path, render_markdown(report, "storage.png"))
    html_path = folder / "report.html"
    _atomic_write(html_path, render_html(report, png))
    return ReportFiles(folder, samples_path, chart_path, md_path, html_path)


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


# ---- savings.csv ----------------------------------------------------------------------

@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive advisory lock beside ``path``: two samplers never interleave rows."""
    lock_path = path.with_name(f".{path.name}.lock")
    with open(lock_path, "a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def append_savings_row(out_dir: str | Path, row: dict) -> bool:
    """Add ``row`` to ``<out_dir>/savings.csv`` (header written once); True if added.

    Cells are formula-neutralised like every CSV we write. The file is rewritten beside
    and renamed under an advisory lock, so a crash never leaves half a row and two
    writers never interleave. A row whose ``run_id`` is already in the file is not
    added again: that closes the crash window between this append and the caller's
    ledger flag (see ``acr_gc.reports.build.finalize_savings``).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "savings.csv"
    line = pd.DataFrame([row]).reindex(columns=SAVINGS_COLUMNS)
    with _locked(path):
        existing = _read_exactly(path) if path.exists() else ""
        if existing.strip():
            present = pd.read_csv(io.StringIO(existing), dtype=str, keep_default_na=False)
            line = line.reindex(columns=list(present.columns))  # a file begun before a column was added keeps its own
            run_ids = set(present["run_id"]) if "run_id" in present.columns else set()
            if str(row.get("run_id")) in run_ids:
                return False
            if not existing.endswith("\n"):
                existing += "\r\n"
            text = existing + csv_text(line, header=False)
        else:
            text = csv_text(line, header=True)
        _atomic_write(path, text)
    return True


def _read_exactly(path: Path) -> str:
    """The text as stored: no newline translation, so quoted CRs and CRLF rows stay as written."""
    with open(path, encoding="utf-8", newline="") as handle:
        return handle.read()
