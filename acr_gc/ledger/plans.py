"""A run's plan table kept in the ledger, for the run that takes over after a kill.

Compressed JSON rather than one row per tag: the plan is written once and read back
whole, and an instance can have a million tags.
"""

from __future__ import annotations

import gzip
import io
import json

import pandas as pd

from acr_gc.ledger.models import RunPlan, RunRules
from acr_gc.ledger.store import Ledger

TEXT_COLUMNS = ("namespace", "repo", "repo_id", "tag", "digest", "certainty", "retained_by", "regenerable_by",
                "regenerate_from")


def save_plan(ledger: Ledger, run_id: str, verdicts: pd.DataFrame) -> None:
    payload = verdicts.to_json(orient="split", index=False, date_format="iso", date_unit="us")
    with ledger.session() as session:
        session.merge(RunPlan(run_id=run_id, tags_json_gz=gzip.compress(payload.encode("utf-8"), compresslevel=3)))


def load_plan(ledger: Ledger, run_id: str) -> pd.DataFrame | None:
    """The plan as saved, with its types back (tags stay text, ``updated`` UTC times)."""
    with ledger.session() as session:
        row = session.get(RunPlan, run_id)
        if row is None:
            return None
        payload = gzip.decompress(row.tags_json_gz).decode("utf-8")
    frame = pd.read_json(io.StringIO(payload), orient="split", dtype=False, convert_dates=False)
    for column in TEXT_COLUMNS:
        if column in frame:
            frame[column] = frame[column].astype("str")  # "007" and "1e5" are tags, not numbers
    if "updated" in frame:
        frame["updated"] = pd.to_datetime(frame["updated"], utc=True, format="ISO8601")
    if "expired" in frame:
        frame["expired"] = frame["expired"].astype(bool)
    return frame


def save_rule_table(ledger: Ledger, run_id: str, table: pd.DataFrame) -> None:
    """The plan's rule table (``rules.rule_table``), kept for the run's report."""
    with ledger.session() as session:
        session.merge(RunRules(run_id=run_id, rules_json=table.to_json(orient="records")))


def load_rule_table(ledger: Ledger, run_id: str) -> pd.DataFrame | None:
    with ledger.session() as session:
        row = session.get(RunRules, run_id)
        payload = None if row is None else row.rules_json
    if payload is None:
        return None
    return pd.DataFrame(json.loads(payload))
