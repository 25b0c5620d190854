"""The ledger's freezes: each Deny statement put on a bucket, and how to undo it.

A freeze is recorded (``intent``, with the original policy) *before* it is put on the
bucket, then marked ``applied``, then ``restored`` or ``restored_partial`` by the thaw:
what ``thaw``, the flow and ``acr-gc status`` all ask is which are not undone yet.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

from sqlalchemy import select

from acr_gc.ledger.models import Freeze
from acr_gc.ledger.store import Ledger

OUTSTANDING = ("intent", "applied")


def outstanding_freezes(ledger: Ledger, bucket: str) -> list[Freeze]:
    """Freezes of ``bucket`` not yet undone, oldest first."""
    with ledger.session() as session:
        return list(
            session.scalars(
                select(Freeze).where(Freeze.bucket == bucket, Freeze.status.in_(OUTSTANDING)).order_by(Freeze.id)
            )
        )


def record_freeze_intent(ledger: Ledger, run_id: str, bucket: str, sid: str, original: dict | None) -> Freeze:
    """The freeze about to be applied, with the policy to restore (None: the bucket had none)."""
    with ledger.session() as session:
        record = Freeze(run_id=run_id, bucket=bucket, sid=sid, had_policy=original is not None,
                        original_policy=json.dumps(original) if original is not None else None,
                        status="intent", created_at=datetime.now(timezone.utc))
        session.add(record)
    return record


def mark_freeze_applied(ledger: Ledger, freeze_id: int) -> None:
    with ledger.session() as session:
        session.get(Freeze, freeze_id).status = "applied"


def mark_freeze_undone(ledger: Ledger, freeze_id: int, status: str, note: str | None) -> None:
    """The thaw's outcome: ``restored``, or ``restored_partial`` (the policy changed meanwhile)."""
    with ledger.session() as session:
        row = session.get(Freeze, freeze_id)
        row.status = status
        row.restored_at = datetime.now(timezone.utc)
        row.note = note
