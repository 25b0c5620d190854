"""``acr-gc status``: where each instance in the ledger stands, for people and scripts.

Per instance: its last run (state, when, tags deleted), its open release windows (days
left), whether a freeze is on its bucket now, and the savings to date (the sum of its
savings.csv rows). The freeze is read from the bucket's policy (our ``AcrGcFreeze…``
statements), not only from the ledger: a lost ledger or a hand-made change must show.
Without a config (``--ledger URL`` only) there is no way to ask the cloud, so the
freeze and the clock come from the ledger, and the output says so.

Read-only: no run folder is written and nothing in the cloud changes.
"""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path

import pandas as pd

from acr_gc.cloud.errors import CloudError
from acr_gc.ledger import Ledger, Run
from acr_gc.ledger.freezes import outstanding_freezes
from acr_gc.ledger.instance_lock import live_holder
from acr_gc.ledger.runs import all_runs
from acr_gc.rules.figures import SAVINGS_COLUMNS
from acr_gc.ledger.states import RunState

log = logging.getLogger(__name__)

DAY_S = 86400.0


def _iso(moment: datetime | None) -> str | None:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment is not None else None


def _tags_deleted(run: Run) -> int | None:
    import json

    return json.loads(run.gc_json).get("tags_deleted") if run.gc_json else None


def _savings(runs: list[Run], instance_id: str) -> dict:
    """The instance's rows of every savings.csv its runs wrote to, each run counted once."""
    frames = []
    for out_dir in sorted({run.out_dir for run in runs}):
        path = Path(out_dir) / "savings.csv"
        if path.exists():
            frames.append(pd.read_csv(path, dtype={"run_id": str, "instance": str}, keep_default_na=False))
    rows = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=SAVINGS_COLUMNS)
    mine = rows[rows["instance"] == instance_id].drop_duplicates("run_id")
    return {
        "runs": int(len(mine)),
        "bytes_reclaimed": int(pd.to_numeric(mine["bytes_reclaimed"]).sum()),
        "saving_per_month": round(float(pd.to_numeric(mine["saving_per_month"]).sum()), 2),
        "currency": ", ".join(sorted(set(mine["currency"]))) or None,
    }


def freeze_on_bucket(clients, bucket: str) -> list[str]:
    """Our freeze statements on ``bucket`` now, read with the config's endpoint and credentials
    (``clients``: the command's :class:`~acr_gc.cloud.clients.CloudClients`)."""
    from acr_gc.rules.freeze import freeze_sids

    return freeze_sids(clients.oss_for(bucket).get_policy())


def cloud_now(oss) -> datetime:
    """The cloud's clock (an OSS response's Date, through the adapter ``oss``): release windows end on it."""
    return oss.bucket_stat().taken_at


def instance_status(ledger: Ledger, clients, now: datetime) -> list[dict]:
    """One entry per instance the ledger knows, sorted by instance id; ``clients`` (a
    :class:`~acr_gc.cloud.clients.CloudClients`, or None) gives the cloud access to read
    each bucket's policy, ``now`` the cloud's clock."""
    runs = all_runs(ledger)
    by_instance: dict[str, list[Run]] = {}
    for run in runs:
        by_instance.setdefault(run.instance_id, []).append(run)
    entries = []
    for instance_id, mine in sorted(by_instance.items()):
        last = mine[-1]
        bucket = last.bucket
        holder = live_holder(ledger, instance_id)
        sids, source = None, "ledger"
        if clients is not None:
            try:
                sids, source = freeze_on_bucket(clients, bucket), "bucket"
            except CloudError as exc:  # another account's bucket: the ledger is all there is
                log.warning("cannot read the policy of bucket %s (%s): the freeze shown is the ledger's", bucket, exc)
        if sids is None:
            sids = [f.sid for f in outstanding_freezes(ledger, bucket) if f.status == "applied"]
        windows = [
            {"run_id": run.run_id, "window_end": _iso(run.window_end),
             "days_left": round(max(0.0, (run.window_end - now).total_seconds() / DAY_S), 2)
             if run.window_end else None}
            for run in mine if run.state is RunState.GC_DONE
        ]
        entries.append({
            "instance_id": instance_id,
            "bucket": bucket,
            "last_run": {"run_id": last.run_id, "state": last.state, "started_at": _iso(last.started_at),
                         "finished_at": _iso(last.finished_at), "tags_deleted": _tags_deleted(last)},
            "open_windows": windows,
            "freeze": {"on": bool(sids), "sids": sids, "read_from": source,
                       "live_run": holder.run_id if holder is not None else None},
            "savings_to_date": _savings(mine, instance_id),
        })
    return entries


def unattended_freezes(entries: list[dict]) -> list[str]:
    """Instances whose bucket is frozen while no live run holds them: someone must act."""
    return [e["instance_id"] for e in entries if e["freeze"]["on"] and e["freeze"]["live_run"] is None]


def print_status(entries: list[dict], now: datetime) -> None:
    """A rich table, one row per instance (plain text when the output is no terminal)."""
    from rich.console import Console
    from rich.table import Table

    from acr_gc.reports.console import human_bytes, printable

    table = Table(title=f"acr-gc status at {_iso(now)}")
    for column in ("instance", "last run", "tags deleted", "open windows", "freeze now", "saved to date"):
        table.add_column(column)
    for e in entries:
        last, freeze, saved = e["last_run"], e["freeze"], e["savings_to_date"]
        windows = ", ".join(f"{w['run_id']}: {w['days_left']} days left" for w in e["open_windows"]) or "none"
        if freeze["on"]:
            held = f"run {freeze['live_run']} live" if freeze["live_run"] else "NO live run: acr-gc thaw"
            frozen = f"ON ({held}; from the {freeze['read_from']})"
        else:
            frozen = f"off (from the {freeze['read_from']})"
        money = f"{saved['saving_per_month']} {saved['currency']}/month, " if saved["currency"] else ""
        table.add_row(printable(e["instance_id"]), f"{last['state']} {last['finished_at'] or last['started_at']}",
                      str(last["tags_deleted"] if last["tags_deleted"] is not None else "-"), windows, frozen,
                      f"{money}{human_bytes(saved['bytes_reclaimed'])} ({saved['runs']} runs)")
    Console(width=200).print(table)
