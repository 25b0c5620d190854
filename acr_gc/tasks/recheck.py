"""The re-check right before GC starts (DESIGN sections 2 and 4; issue 11).

Between the gate and GC a console pause can last hours, and the freeze does not stop
``docker push`` nor a rule edited in the console: GC deletes what the rules say *when it
runs*, not what they said at the plan. So, after the freeze and immediately before GC is
started (or a person is asked to start it), the rules and tags are listed again and
planned under the same readings; GC may start only when every tag the fresh plan lets it
delete (certain ∪ possible) is in the gated plan with the same digest. Otherwise the run
stops with GC never started, so ``bucket_frozen`` thaws and nothing is deleted.
"""

from __future__ import annotations

import pandas as pd
from prefect import task

from acr_gc import rules
from acr_gc.cloud.acr import AcrClient
from acr_gc.config import Config
from acr_gc.reports.console import printable
from acr_gc.rules.verification import outside_gated
from acr_gc.tasks import inventory as inv
from acr_gc.tasks.planning import NO_RETRY, planned_readings

NAMED_IN_MESSAGE = 10


class PlanChangedBeforeGc(RuntimeError):
    """The fresh plan would let GC delete tags the gate never saw: GC is not started."""


@task(name="recheck-plan", **NO_RETRY)
def recheck_plan(config: Config, acr: AcrClient, gated: pd.DataFrame) -> pd.DataFrame:
    """Rules and tags listed again (complete listings), planned under the plan's readings;
    the tags GC could now delete outside ``gated`` (namespace, repo, tag, digest)."""
    lifecycle_rules = inv.fetch_rules(acr)
    tags = inv.fetch_tags(acr, inv.fetch_repositories(acr), config.api.concurrency)
    fresh = rules.plan(tags, lifecycle_rules, readings=planned_readings(config))
    return outside_gated(fresh, gated)


def recheck_before_gc(config: Config, acr: AcrClient, gated: pd.DataFrame) -> None:
    """Raise :class:`PlanChangedBeforeGc`, naming the tags, unless the fresh plan lies inside ``gated``."""
    outside = recheck_plan(config, acr, gated)
    if not len(outside):
        return
    listed = ", ".join(f"{r.namespace}/{r.repo}:{r.tag}" for r in outside.head(NAMED_IN_MESSAGE).itertuples())
    more = ", …" if len(outside) > NAMED_IN_MESSAGE else ""
    raise PlanChangedBeforeGc(printable(
        f"re-check before GC: the lifecycle rules now expire {len(outside)} tag(s) outside the gated plan "
        f"({listed}{more}): rules or tags changed since the plan; GC was not started, nothing was deleted and "
        "the freeze is undone — run again to plan and gate afresh"))
