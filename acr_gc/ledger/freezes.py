"""The ledger's freezes not yet undone: what `thaw`, the flow and `acr-gc status` all ask."""

from __future__ import annotations

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
