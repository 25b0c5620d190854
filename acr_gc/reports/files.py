"""Writing a run's files into ``<out_dir>/<instance_id>/<run_id>/`` (DESIGN section 8).

CSV cells that a spreadsheet would run as a formula (leading ``=``, ``+``, ``-``, ``@``,
tab or carriage return; OWASP's list) are prefixed with ``'``: finance opens these files
in Excel. A cell that already starts with ``'`` gets one too, so that a program reading
the file takes exactly one leading ``'`` off any cell and has the data back, unchanged.
Rows end in CRLF (RFC 4180): the csv writer then quotes a cell holding a lone CR, which
would otherwise end the row in the middle of a name.
"""

from __future__ import annotations

import json
import os
import secrets
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from acr_gc.reports.summary import Summary

PLAN_CSV_COLUMNS = ["namespace", "repo", "tag", "digest", "size", "updated", "expired", "certainty", "regenerable_by"]
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
_NEUTRALISED_PREFIXES = (*_FORMULA_PREFIXES, "'")


def new_run_id(now: datetime | None = None) -> str:
    """Sortable by time and unique: ``20261128T173000Z-1a2b3c``."""
    now = now or datetime.now(timezone.utc)
    return f"{now.strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(3)}"


def run_dir(out_dir: str | Path, instance_id: str, run_id: str) -> Path:
    path = Path(out_dir) / instance_id / run_id
    path.mkdir(parents=True, exist_ok=True)
    return path


def neutralize_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """Text cells that start like a spreadsheet formula, or with an apostrophe, get a leading apostrophe."""
    out = frame.copy()
    for column in out.columns:
        if out[column].dtype == object or pd.api.types.is_string_dtype(out[column]):
            values = out[column]
            risky = _starts_like_formula(values)
            if risky.any():
                out.loc[risky, column] = "'" + values[risky]
    return out


def _starts_like_formula(values: pd.Series) -> pd.Series:
    """Which cells are text starting with a risky prefix. Vectorised where the column holds
    only text (plan.csv has 60,000 rows × 5 text columns on a large instance); cell by cell
    when it mixes text with other values."""
    try:
        return values.str.startswith(_NEUTRALISED_PREFIXES, na=False).astype(bool)
    except (AttributeError, TypeError):
        return values.map(lambda v: isinstance(v, str) and v.startswith(_NEUTRALISED_PREFIXES)).astype(bool)


def csv_text(frame: pd.DataFrame, header: bool = True) -> str:
    """The frame as CSV the way every file of a run is written: neutralised, CRLF rows."""
    return neutralize_formulas(frame).to_csv(index=False, header=header, lineterminator="\r\n")


def write_csv(frame: pd.DataFrame, path: Path) -> Path:
    _atomic_write(path, csv_text(frame))
    return path


def plan_csv_frame(verdicts: pd.DataFrame) -> pd.DataFrame:
    frame = verdicts.rename(columns={"image_size": "size"})
    frame = frame.assign(updated=frame["updated"].dt.strftime("%Y-%m-%dT%H:%M:%SZ"))
    if "certainty" not in frame:  # a plan saved before certainty existed: every expired tag was certain
        frame = frame.assign(certainty=frame["expired"].map({True: "certain", False: ""}))
    return frame[PLAN_CSV_COLUMNS].sort_values(["namespace", "repo", "tag"], kind="stable")


def write_unreadable_manifests(verdicts: pd.DataFrame, digests, folder: Path) -> Path | None:
    """``unreadable_manifests.csv``: the expiring images whose manifests the forecast could not
    read (counted by image size, which makes the expected bytes an upper bound)."""
    if not len(digests):
        return None
    rows = verdicts[verdicts["digest"].isin(set(digests))]
    frame = rows.rename(columns={"image_size": "size"})[["namespace", "repo", "tag", "digest", "size"]]
    return write_csv(frame.sort_values(["namespace", "repo", "tag"], kind="stable"), folder / "unreadable_manifests.csv")


def write_plan_csv(verdicts: pd.DataFrame, folder: Path) -> Path:
    return write_csv(plan_csv_frame(verdicts), folder / "plan.csv")


def write_summary(summary: Summary, folder: Path) -> Path:
    path = folder / "summary.json"
    _atomic_write(path, json.dumps(summary.model_dump(mode="json"), indent=2) + "\n")
    return path


def _atomic_write(path: Path, text: str) -> None:
    """Write beside, then rename: a crash never leaves half a file for other programs."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
