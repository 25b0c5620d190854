"""Telling people what a run did: one message per event through a Prefect notification block.

``notify.block`` names any saved Prefect notification block (Slack, a custom webhook,
email, …): ``<type-slug>/<name>`` or just ``<name>`` when one block has that name. A run
sends one message when it is BLOCKED, REJECTED, FAILED or CANCELED, when it waits for
the plan's approval, when GC is done, and when the report is final (COMPLETE). A
receiver that fails never fails the run: the failure is a logged warning. Teams who
prefer Prefect automations can drop the block and trigger on flow-run states
(docs/operations.md).
"""

from __future__ import annotations

import logging
from pathlib import Path

from acr_gc.config import Config
from acr_gc.reports.console import human_bytes
from acr_gc.ledger.states import RunState

log = logging.getLogger(__name__)

AWAITING_APPROVAL = "AWAITING_APPROVAL"  # the one event that is not a run state
EVENTS = (RunState.BLOCKED, RunState.REJECTED, RunState.FAILED, RunState.CANCELED, AWAITING_APPROVAL,
          RunState.GC_DONE, RunState.COMPLETE)


def _load_block(name: str):
    """The saved block: ``type/name`` loads directly; a bare name is looked up by name."""
    from prefect.blocks.core import Block

    if "/" in name:
        return Block.load(name)
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        found = {doc.block_type.slug for doc in client.read_block_documents() if doc.name == name
                 and doc.block_type is not None}
    if len(found) != 1:
        raise ValueError(f"no single block named {name!r} ({len(found)} found): write notify.block as <type>/<name>")
    return Block.load(f"{found.pop()}/{name}")


def message(event: str, summary: dict, folder: Path | str | None, detail: str | None = None) -> tuple[str, str]:
    """(subject, body): the event, the instance, the headline figures and where the report is."""
    instance, run_id = summary.get("instance_id"), summary.get("run_id")
    subject = f"acr-gc {instance}: {event}"
    lines = [f"acr-gc run {run_id} on instance {instance} (bucket {summary.get('bucket')}): {event}"]
    if detail:
        lines.append(detail)
    plan = summary.get("plan") or {}
    if plan:
        lines.append(f"plan: {plan.get('tags_expired')} of {plan.get('tags_total')} tags to delete, "
                     f"expected {human_bytes(plan.get('bytes_expected') or 0)} freed "
                     f"({plan.get('bytes_expected')} bytes)")
    gc = summary.get("gc") or {}
    if gc.get("task_id"):
        lines.append(f"GC task {gc['task_id']}: {gc.get('state')}, {gc.get('tags_deleted')} tags deleted")
    storage, cost = summary.get("storage") or {}, summary.get("cost") or {}
    if storage.get("reclaimed_bytes") is not None:
        lines.append(f"reclaimed {human_bytes(storage['reclaimed_bytes'])} ({storage['reclaimed_bytes']} bytes, "
                     f"{storage.get('reclaimed_pct')}%)")
    if cost.get("saving_per_month") is not None:
        lines.append(f"saving {cost['saving_per_month']} {cost.get('currency')} per month")
    if folder is not None:
        report = Path(folder) / "report.html"
        lines.append(f"report: {report if report.exists() else Path(folder)}")
    return subject, "\n".join(lines)


def send(config: Config, event: str, summary: dict, folder: Path | str | None = None,
         detail: str | None = None) -> bool:
    """Send one event's message; False (and a warning) when there is no receiver or it failed."""
    if config.notify.block is None:
        return False
    subject, body = message(event, summary, folder, detail)
    try:
        _load_block(config.notify.block).notify(body, subject=subject)
    except Exception as exc:  # a receiver down is never a reason to fail the run
        log.warning("notification %s to block %s failed: %s", event, config.notify.block,
                    (str(exc).splitlines() or [type(exc).__name__])[0][:300])
        return False
    return True
