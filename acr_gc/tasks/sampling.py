"""Bucket storage samples (GetBucketStat) into the ledger (DESIGN section 7)."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from acr_gc.cloud.clients import oss_client
from acr_gc.config import Config
from acr_gc.ledger import Ledger, Sample


@task(name="sample-bucket", cache_policy=NO_CACHE)
def sample_bucket(config: Config, ledger: Ledger, run_id: str, phase: str) -> Sample:
    stat = oss_client(config).bucket_stat()
    sample = Sample(
        run_id=run_id,
        bucket=config.target.bucket,
        taken_at=stat.taken_at,
        storage_bytes=stat.storage_bytes,
        object_count=stat.object_count,
        phase=phase,
    )
    with ledger.session() as session:
        session.add(sample)
    return sample
