"""Bucket storage samples (GetBucketStat) into the ledger (DESIGN section 7).

OSS's statistics are not real-time: GetBucketStat answers figures computed some time ago
(an hour or more), and says when in ``LastModifiedTime``. So a sample is timed by that
moment (:attr:`acr_gc.cloud.oss.BucketStat.taken_at`), never by the request:

* the baseline ("before") must include every change up to the moment it is taken — the
  plan's inventory and whatever was pushed before — so :func:`baseline_sample` polls
  until the figures' time reaches the moment it first asked (bounded by
  ``sampling.stat_wait_max`` of cloud time, then a clear error; nothing has changed yet);
* the release window closes only on a sample whose figures date from after its end
  (:func:`sample_until`, and the report's figures, compare ``taken_at``);
* an answer whose figures are older than the run's latest sample ("time went backwards":
  OSS served an older computation) is kept out of the series: stored with phase
  ``stale``, counted in the report's caveats. One as old as the latest is a repeat of the
  same computation (LastModifiedTime has whole seconds) and is kept.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime

from prefect import task
from prefect.cache_policies import NO_CACHE

from acr_gc.cloud.oss import BucketStat, OssClient
from acr_gc.config import Config
from acr_gc.ledger import Ledger, Sample
from acr_gc.ledger.samples import add_sample, latest_sample_time
from acr_gc.rules.figures import STALE_PHASE
from acr_gc.tasks.checks import CheckFailed

log = logging.getLogger(__name__)



class StatisticsLate(CheckFailed):
    """GetBucketStat's figures did not reach the moment the baseline must cover in time:
    the run stops BLOCKED before any change (the baseline is its last check)."""


def _record(bucket: str, ledger: Ledger, run_id: str, stat: BucketStat, phase: str) -> Sample:
    return add_sample(ledger, run_id, bucket=bucket, taken_at=stat.taken_at,
                      storage_bytes=stat.storage_bytes, object_count=stat.object_count, phase=phase)


@task(name="sample-bucket", cache_policy=NO_CACHE)
def sample_bucket(oss: OssClient, ledger: Ledger, run_id: str, phase: str) -> Sample | None:
    """One sample of ``oss``'s bucket into the run's series; None when its figures are older
    than the run's latest sample (then kept out: stored as ``stale``)."""
    stat = oss.bucket_stat()
    latest = latest_sample_time(ledger, run_id)
    if latest is not None and stat.taken_at < latest:
        _record(oss.bucket, ledger, run_id, stat, STALE_PHASE)
        log.warning("bucket statistics went back in time (figures of %s, after a sample of %s): kept out of "
                    "the series", stat.taken_at.isoformat(), latest.isoformat())
        return None
    return _record(oss.bucket, ledger, run_id, stat, phase)


@task(name="sample-baseline", cache_policy=NO_CACHE)
def baseline_sample(config: Config, oss: OssClient, ledger: Ledger, run_id: str) -> Sample:
    """The "before" sample, once GetBucketStat's figures cover the moment it was asked for.

    The moment to cover is the cloud's clock at the first answer (its ``Date``): every
    change up to then — the inventory the plan was made from, and any push before — must
    be inside "before", or the reclaimed bytes would be short by them. While the figures
    are older, wait as long as they lag (in cloud time; compressed days against an
    emulator), up to ``sampling.stat_wait_max``.
    """
    stat = oss.bucket_stat()
    cover = stat.asked_at or stat.taken_at
    limit = config.sampling.stat_wait_max
    if cover - stat.taken_at > limit:  # no point waiting: they would not catch up in time
        raise StatisticsLate(
            f"bucket {config.target.bucket}: GetBucketStat's figures are from {_iso(stat.taken_at)}, "
            f"{cover - stat.taken_at} behind the cloud's clock ({_iso(cover)}), more than sampling.stat_wait_max; "
            "nothing was changed: run again later or raise sampling.stat_wait_max"
        )
    while stat.taken_at < cover:
        now = stat.asked_at or cover
        if now - cover >= limit:
            raise StatisticsLate(
                f"bucket {config.target.bucket}: GetBucketStat's figures are still from {_iso(stat.taken_at)}, before "
                f"{_iso(cover)} which the baseline must cover, after waiting {now - cover} of cloud time "
                f"(sampling.stat_wait_max); nothing was changed: run again later or raise sampling.stat_wait_max"
            )
        lag = cover - stat.taken_at
        wait = min(lag, limit - (now - cover)).total_seconds() + 1.0  # past the moment, not onto it
        log.info("bucket statistics lag %s behind the baseline's moment: waiting", lag)
        time.sleep(max(0.05, real_seconds(config, wait)))
        stat = oss.bucket_stat()
    return _record(oss.bucket, ledger, run_id, stat, "before")


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def real_seconds(config: Config, cloud_seconds: float) -> float:
    """Real time for a span of cloud time: ``sampling.day_length`` is one cloud day."""
    return cloud_seconds / 86400.0 * config.sampling.day_length.total_seconds()


def sample_until(config: Config, oss: OssClient, ledger: Ledger, run_id: str, window_end,
                 on_sample=None) -> list[Sample]:
    """Inline sampling: one "after" sample per interval until one whose figures date from
    at or after ``window_end`` (OSS's statistics lag: the request time is not enough).
    Used by the demo and tests, where cloud days are compressed; in production the daily
    sampler does this instead. Returns the samples added to the series."""
    samples: list[Sample] = []
    pause = real_seconds(config, config.sampling.interval.total_seconds())
    while True:
        sample = sample_bucket(oss, ledger, run_id, "after")
        if sample is not None:
            samples.append(sample)
            if on_sample is not None:
                on_sample(sample)
            if window_end is None or sample.taken_at >= window_end:
                return samples
        behind = (window_end - sample.taken_at).total_seconds() if sample is not None and window_end else None
        time.sleep(max(0.05, min(pause, real_seconds(config, behind)) if behind is not None else pause))
