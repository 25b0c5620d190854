"""Checks of the operator's input before any step runs: each failure is one clear line.

Bad input (config, credentials, an unknown instance or bucket, an invalid lifecycle rule,
an unreadable regeneration manifest, a malformed allow list) stops the run here, before
the inventory and long before anything could change in the cloud.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from acr_gc import rules
from acr_gc.cloud.clients import CloudClients
from acr_gc.cloud.errors import AuthError, CloudError, NotFound
from acr_gc.config import Config
from acr_gc.tasks import inventory as inv


class BadInput(ValueError):
    """The run cannot start; the message says what is wrong and what to do."""


def preflight(config: Config, clients: CloudClients) -> None:
    """Fails with :class:`BadInput`; the first calls through ``clients`` resolve its credentials."""
    policy = config.policy
    try:
        if policy.regeneration_manifest is not None:
            rules.load_manifest(policy.regeneration_manifest)
        rules.parse_allow_list(policy.allow_unregenerable)
    except (rules.ManifestError, rules.AllowListError) as exc:
        raise BadInput(str(exc)) from None

    target = config.target
    acr = clients.acr
    try:
        acr.get_instance()
    except AuthError as exc:
        raise BadInput(f"credentials rejected by ACR ({exc.code}): check target.credentials") from None
    except NotFound:
        raise BadInput(
            f"instance {target.instance_id} not found in region {target.region}: check target.instance_id"
        ) from None
    # The bucket and the lifecycle rules are independent reads: asked together (one round
    # trip instead of two on the way to the first flow call), judged in this order. Not
    # beside GetInstance: that one imports the ACR SDK, and two threads importing the same
    # packages at once can see each other's half-imported modules.
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="preflight") as pool:
        bucket = pool.submit(lambda: clients.oss.bucket_info())
        lifecycle_rules = pool.submit(inv.fetch_rules, acr)
    try:
        bucket.result()
    except AuthError as exc:
        raise BadInput(f"credentials rejected by OSS ({exc.code}): check target.credentials") from None
    except NotFound:
        raise BadInput(f"bucket {target.bucket} not found: check target.bucket") from None
    except CloudError as exc:
        if exc.code in ("AccessDenied",):
            raise BadInput(f"no access to bucket {target.bucket}: {exc.code}") from None
        if exc.http_status == 400:  # e.g. InvalidArgument: the signing region is not the bucket's
            raise BadInput(
                f"bucket {target.bucket} refused the request ({exc.code}): check target.region "
                f"({target.region}) and target.oss_endpoint"
            ) from None
        raise
    try:
        rules.parse_rules(lifecycle_rules.result())
    except rules.RuleError as exc:
        raise BadInput(f"{exc}: fix the rule in the ACR console") from None
