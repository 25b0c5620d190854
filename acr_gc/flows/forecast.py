"""``forecast_variants`` (``acr-gc forecast``): what-if retention rules, priced. Changes nothing.

One inventory, one manifest graph (the registry API through the ledger's cache), then per
variant: the retention plan, the exact forecast of the bytes GC would free, the saving per
month at the configured price and the tags no one could regenerate. Writes
``forecast.csv`` and ``forecast.png`` (saving against N for the ``--keep`` variants) into a
run folder, and a table artifact on the flow run. The cloud adapters are built once, at the
flow's start, and handed to the steps.
"""

from __future__ import annotations

from contextlib import closing
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import ThreadPoolTaskRunner

from acr_gc import rules
from acr_gc.cloud.clients import CloudClients
from acr_gc.config import Config
from acr_gc.reports import files
from acr_gc.rules.figures import GIB, monthly_saving
from acr_gc.rules.forecast import closure_rows, forecast
from acr_gc.rules.whatif import keep_variant, older_than
from acr_gc.tasks import inventory as inv
from acr_gc.tasks.forecast import ManifestGraph, read_manifests
from acr_gc.tasks.planning import _table, planned_readings, take_inventory

COLUMNS = ["variant", "keep", "tags_deleted", "bytes_freed", "bytes_freed_max", "saving_per_month", "unregenerable_tags",
           "is_upper_bound"]


@dataclass
class ForecastOutcome:
    run_id: str
    folder: Path
    table: pd.DataFrame


@task(name="regeneration-sources", cache_policy=NO_CACHE, retries=0)
def regeneration_sources(clients: CloudClients, concurrency: int, inventory: inv.Inventory,
                         planned: list[pd.DataFrame]):
    """Replicas and build rules of every repository that loses a tag in some variant (read once)."""
    acr = clients.acr
    repos: set[tuple[str, str]] = set()
    for frame in planned:
        expired = frame[frame["expired"]]
        repos |= set(zip(expired["namespace"], expired["repo"]))
    if not repos:
        return None, None
    replicas = inv.fetch_replica_tags(acr, repos, clients.acr_for)
    table = inventory.repositories
    builds = inv.fetch_build_rules(acr, table[[k in repos for k in zip(table["namespace"], table["repo"])]],
                                   concurrency)
    return replicas, builds


def _chart(table: pd.DataFrame, currency: str, path: Path) -> None:
    from matplotlib.figure import Figure

    keeps = table.dropna(subset=["keep"]).sort_values("keep")
    fig = Figure(figsize=(7, 4), dpi=100)
    ax = fig.add_subplot()
    ax.plot(keeps["keep"].astype(int), keeps["saving_per_month"], marker="o")
    ax.set_xlabel("tags kept per repository (N)")
    ax.set_ylabel(f"saving per month ({currency})")
    ax.set_title("Saving per month against N")
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)


@flow(name="forecast-variants", task_runner=ThreadPoolTaskRunner(max_workers=8), log_prints=False)
def forecast_variants(config: Config, keeps: list[int] | None = None, older_than_days: float | None = None,
                      rule_sets: dict[str, pd.DataFrame] | None = None, run_id: str | None = None) -> ForecastOutcome:
    run_id = run_id or files.new_run_id()
    with closing(CloudClients.from_config(config)) as clients:  # once per run; never a parameter
        return _forecast(config, clients, keeps, older_than_days, rule_sets, run_id)


def _forecast(config: Config, clients: CloudClients, keeps: list[int] | None, older_than_days: float | None,
              rule_sets: dict[str, pd.DataFrame] | None, run_id: str) -> ForecastOutcome:
    inventory = take_inventory(config, clients)
    tags = inventory.tags
    graph = (read_manifests(clients.registry, config.ledger.url, tags) if config.target.registry_endpoint
             else ManifestGraph())
    variants: list[tuple[str, int | None, pd.DataFrame]] = [("current rules", None, inventory.rules)]
    variants += [(f"keep {n}", n, keep_variant(inventory.rules, n)) for n in keeps or []]
    variants += [(name, None, frame) for name, frame in (rule_sets or {}).items()]
    now = datetime.now(timezone.utc)
    planned = []
    readings = planned_readings(config)  # the plan's own: conservative gives certain … possible
    for name, _, frame in variants:
        p = rules.plan(tags, frame, readings=readings)
        planned.append(older_than(p, older_than_days, now) if older_than_days is not None else p)
    replicas, builds = regeneration_sources(clients, config.api.concurrency, inventory, planned)
    manifest = rules.load_manifest(config.policy.regeneration_manifest) if config.policy.regeneration_manifest else None
    rows_cache = closure_rows(tags["digest"], graph.manifests)
    rows = []
    for (name, keep, _), p in zip(variants, planned):
        label = name if older_than_days is None else f"{name}, older than {older_than_days:g} days"
        certain = (p["certainty"] == rules.CERTAIN).to_numpy(dtype=bool)
        outcome = forecast(p, graph.manifests, certain, rows_cache)
        outcome_max = forecast(p, graph.manifests, p["expired"].to_numpy(dtype=bool), rows_cache)
        verdicts = rules.regenerability(p, replicas, builds, manifest, config.policy.allow_unregenerable)
        unregenerable = int((verdicts["expired"] & (verdicts["regenerable_by"] == "none")).sum())
        rows.append({"variant": label, "keep": keep, "tags_deleted": outcome_max.tags_deleted,
                     "bytes_freed": outcome.bytes, "bytes_freed_max": outcome_max.bytes,
                     "saving_per_month": monthly_saving(outcome.bytes, config.report.price_per_gb_month),
                     "unregenerable_tags": unregenerable, "is_upper_bound": outcome_max.is_upper_bound})
    table = pd.DataFrame(rows, columns=COLUMNS).astype({"keep": "Int64"})
    folder = files.run_dir(config.report.out_dir, config.target.instance_id, run_id)
    files.write_csv(table, folder / "forecast.csv")
    _chart(table, config.report.currency, folder / "forecast.png")
    shown = table.assign(freed_gib=(table["bytes_freed"] / GIB).round(2))
    _table("forecast", config, shown[["variant", "tags_deleted", "freed_gib", "saving_per_month", "unregenerable_tags"]],
           f"What-if retention variants for {config.target.instance_id} ({config.report.currency} per month)")
    return ForecastOutcome(run_id, folder, table)
