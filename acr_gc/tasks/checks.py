"""The checks between the plan and the first change: whitelist and bucket.

Each failure is a :class:`CheckFailed` whose message is one line naming the next step
for the operator; the flow then ends BLOCKED with the cloud exactly as it was.
"""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from acr_gc.cloud.oss import OssClient
from acr_gc.config import Config
from acr_gc.gc import GcDriver
from acr_gc.rules.window import BucketRule, Window, release_window


class CheckFailed(RuntimeError):
    """A check stopped the run before any change; the message says what to do next."""


def check_whitelist(config: Config, driver: GcDriver) -> None:
    """Not a task: the console driver may pause the flow here to ask the operator, and
    only the flow itself should pause."""
    if not driver.is_enabled():
        raise CheckFailed(
            f"GC is not enabled for instance {config.target.instance_id}: submit the one-time whitelist "
            "ticket (console: Instances > Garbage Collection > Execute > Submit Ticket), then run again"
        )


@task(name="check-bucket", cache_policy=NO_CACHE)
def check_bucket(config: Config, oss: OssClient) -> Window:
    """The release window from the bucket's versioning and lifecycle (DESIGN section 7)."""
    window, blocked = release_check(config, oss)
    if blocked:
        raise CheckFailed(blocked)
    return window


def release_check(config: Config, oss: OssClient) -> tuple[Window, str | None]:
    """The bucket's release window (GetBucketVersioning, GetBucketLifecycle with every rule
    filter), and the one-line message that stops a run (and fails ``acr-gc plan``) when the
    storage would never drop and ``policy.accept_never_released`` does not accept that."""
    window = release_window(
        oss.get_versioning(),
        [BucketRule.from_oss(rule) for rule in oss.get_lifecycle()],
        margin_days=config.sampling.margin_days,
        window_days=config.sampling.window_days,
    )
    if window.never_released and not config.policy.accept_never_released:
        return window, (
            f"bucket {config.target.bucket}: {window.reason}; add an Enabled NoncurrentVersionExpiration lifecycle "
            "rule over the registry's prefix with no tag, Not or size filter, or set "
            "policy.accept_never_released: true to run anyway"
        )
    return window, None
