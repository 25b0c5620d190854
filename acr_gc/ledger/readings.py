"""Learned semantics: which reading of the lifecycle rules an instance's cloud follows.

Each run that saw its GC to the end records, in its ``checks_json`` (the summary.json
checks block kept on the run row), ``readings_consistent``: the readings whose prediction
matched what the cloud deleted. ``policy.semantics: learned`` plans with the reading the
instance's most recent observation singled out -- provided no later observation
contradicts it -- and falls back to every reading (conservative) otherwise.
"""

from __future__ import annotations

import json

from sqlalchemy import select

from acr_gc.ledger.models import Run
from acr_gc.ledger.store import Ledger


def learned_reading(ledger: Ledger, instance_id: str) -> str | None:
    """The reading name (``combination/count_regexp/regexp_match``) learned for the
    instance, or None when no run has singled one out consistently."""
    with ledger.session() as session:
        rows = session.execute(
            select(Run.checks_json).where(Run.instance_id == instance_id, Run.checks_json.is_not(None))
            .order_by(Run.started_at.desc())
        ).scalars().all()
    newer: list[set[str]] = []
    for text in rows:
        observed = json.loads(text).get("readings_consistent")
        if observed is None:
            continue
        if len(observed) == 1:
            name = observed[0]
            return name if all(name in later for later in newer) else None
        newer.append(set(observed))
    return None
