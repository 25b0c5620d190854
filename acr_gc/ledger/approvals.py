"""The ledger's approvals: a person's answer to a run's plan (``approval.required``)."""

from __future__ import annotations

from datetime import datetime

from acr_gc.ledger.models import Approval
from acr_gc.ledger.store import Ledger


def record_approval(ledger: Ledger, run_id: str, *, asked_at: datetime, answered_at: datetime, approved: bool,
                    answered_by: str | None, reason: str | None, via: str) -> None:
    """Keep the answer with the run (a later answer replaces an earlier one)."""
    with ledger.session() as session:
        session.merge(Approval(run_id=run_id, asked_at=asked_at, answered_at=answered_at, approved=approved,
                               answered_by=answered_by, reason=reason, via=via))


def approval_of(ledger: Ledger, run_id: str) -> Approval | None:
    with ledger.session() as session:
        return session.get(Approval, run_id)
