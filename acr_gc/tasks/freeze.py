"""Freeze and thaw of the registry's bucket (DESIGN section 5), recorded in the ledger.

Order matters for crash safety: the original policy is written to the ledger *before*
the freeze is put on the bucket, so whatever kills the process afterwards, ``thaw``
finds what to restore. Thaw works from the ledger alone (no run state in memory), so
the flow's ``finally``, its failure/cancellation/crash hooks and ``acr-gc thaw`` all
call the same function, and calling it twice is harmless.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import select

from acr_gc.cloud.clients import oss_client
from acr_gc.config import Config
from acr_gc.ledger import Freeze, Ledger
from acr_gc.rules.freeze import apply_freeze, freeze_sid, freeze_statement, thaw_policy

log = logging.getLogger(__name__)

OUTSTANDING = ("intent", "applied")


def outstanding_freezes(ledger: Ledger, bucket: str) -> list[Freeze]:
    """Freezes of ``bucket`` not yet undone, oldest first."""
    with ledger.session() as session:
        return list(
            session.scalars(
                select(Freeze).where(Freeze.bucket == bucket, Freeze.status.in_(OUTSTANDING)).order_by(Freeze.id)
            )
        )


def freeze_bucket(config: Config, ledger: Ledger, run_id: str) -> Freeze:
    """Deny object writes and deletes on the bucket; reuse a freeze already recorded.

    A freeze left by a killed run is adopted rather than stacked: its saved original is
    still the policy to restore, and its statement is (re)applied idempotently.
    """
    oss = oss_client(config)
    bucket = config.target.bucket
    earlier = outstanding_freezes(ledger, bucket)
    current = oss.get_policy()
    if earlier:
        record = earlier[0]
        sid = record.sid
        log.warning("bucket %s: reusing the freeze recorded by run %s (never stacked)", bucket, record.run_id)
    else:
        sid = freeze_sid(run_id)
        with ledger.session() as session:
            record = Freeze(
                run_id=run_id,
                bucket=bucket,
                sid=sid,
                had_policy=current is not None,
                original_policy=json.dumps(current) if current is not None else None,
                status="intent",
                created_at=datetime.now(timezone.utc),
            )
            session.add(record)
    statement = freeze_statement(bucket, run_id, config.freeze.principals)
    statement["Sid"] = sid
    oss.put_policy(apply_freeze(current, statement))
    with ledger.session() as session:
        session.get(Freeze, record.id).status = "applied"
    return record


@dataclass
class ThawReport:
    restored: int  # freezes undone now
    notes: list[str]

    @property
    def message(self) -> str:
        if not self.restored and not self.notes:
            return "nothing to thaw"
        return "; ".join(self.notes) or f"{self.restored} freeze(s) undone"


def thaw_bucket(config: Config, ledger: Ledger) -> ThawReport:
    """Undo every outstanding freeze of the bucket, as the ledger recorded it."""
    oss = oss_client(config)
    notes: list[str] = []
    restored = 0
    for record in outstanding_freezes(ledger, config.target.bucket):
        original = json.loads(record.original_policy) if record.original_policy is not None else None
        plan = thaw_policy(oss.get_policy(), original, record.sid)
        if plan.action == "put":
            oss.put_policy(plan.policy)
        elif plan.action == "delete":
            oss.delete_policy()
        with ledger.session() as session:
            row = session.get(Freeze, record.id)
            row.status = "restored"
            row.restored_at = datetime.now(timezone.utc)
            row.note = plan.note
        restored += 1
        if plan.note:
            notes.append(plan.note)
            log.warning("bucket %s: %s", config.target.bucket, plan.note)
    return ThawReport(restored, notes)
