"""The ledger's storage samples (GetBucketStat figures) of each run."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from acr_gc.ledger.models import Sample
from acr_gc.ledger.store import Ledger
from acr_gc.rules.figures import SAMPLE_COLUMNS, STALE_PHASE


def add_sample(ledger: Ledger, run_id: str, *, bucket: str, taken_at: datetime, storage_bytes: int,
               object_count: int, phase: str) -> Sample:
    sample = Sample(run_id=run_id, bucket=bucket, taken_at=taken_at, storage_bytes=storage_bytes,
                    object_count=object_count, phase=phase)
    with ledger.session() as session:
        session.add(sample)
    return sample


def copy_baseline(ledger: Ledger, before: Sample, run_id: str) -> Sample:
    """A killed run's baseline, as the baseline of the run that takes its GC over."""
    return add_sample(ledger, run_id, bucket=before.bucket, taken_at=before.taken_at,
                      storage_bytes=before.storage_bytes, object_count=before.object_count, phase="before")


def latest_sample_time(ledger: Ledger, run_id: str) -> datetime | None:
    """When the run's latest sample in the series holds (stale ones are out of it)."""
    with ledger.session() as session:
        return session.scalar(
            select(func.max(Sample.taken_at)).where(Sample.run_id == run_id, Sample.phase != STALE_PHASE)
        )


def baseline_of(ledger: Ledger, run_id: str) -> Sample | None:
    """The run's first "before" sample."""
    with ledger.session() as session:
        return session.scalars(
            select(Sample).where(Sample.run_id == run_id, Sample.phase == "before").order_by(Sample.id)
        ).first()


def samples_frame(ledger: Ledger, run_id: str) -> pd.DataFrame:
    """The run's samples (taken_at, storage_bytes, object_count, phase) by time."""
    with ledger.session() as session:
        return load_samples(session, run_id)


def load_samples(session: Session, run_id: str) -> pd.DataFrame:
    """:func:`samples_frame` inside a transaction already open (the ledger's own modules)."""
    rows = session.execute(
        select(Sample.taken_at, Sample.storage_bytes, Sample.object_count, Sample.phase)
        .where(Sample.run_id == run_id)
        .order_by(Sample.taken_at, Sample.id)
    ).all()
    frame = pd.DataFrame([tuple(r) for r in rows], columns=SAMPLE_COLUMNS)
    if len(frame):
        frame["taken_at"] = pd.to_datetime(frame["taken_at"], utc=True)
    return frame
