"""Bucket storage samples (GetBucketStat) into the ledger (DESIGN section 7)."""

from __future__ import annotations

import time

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


def real_seconds(config: Config, cloud_seconds: float) -> float:
    """Real time for a span of cloud time: ``sampling.day_length`` is one cloud day."""
    return cloud_seconds / 86400.0 * config.sampling.day_length.total_seconds()


def sample_until(config: Config, ledger: Ledger, run_id: str, window_end, on_sample=None) -> list[Sample]:
    """Inline sampling: one "after" sample per interval until the cloud's clock passes
    ``window_end`` (the last sample is taken at or after it). Used by the demo and tests,
    where cloud days are compressed; in production the daily sampler does this instead."""
    samples: list[Sample] = []
    pause = real_seconds(config, config.sampling.interval.total_seconds())
    while True:
        sample = sample_bucket(config, ledger, run_id, "after")
        samples.append(sample)
        if on_sample is not None:
            on_sample(sample)
        if window_end is None or sample.taken_at >= window_end:
            return samples
        time.sleep(max(0.05, min(pause, real_seconds(config, (window_end - sample.taken_at).total_seconds()))))
