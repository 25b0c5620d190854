"""The plan's approval (``approval.required``): a person says yes before anything changes.

After the plan, the gate and the checks, and before the first change, the run asks. The
installed seat (:mod:`acr_gc.seat`) may decide at once — ``acr-gc run --approve``, the
terminal's y/N, or "no terminal and no --approve" (rejected). Otherwise (a deployment's
flow run on a worker) the flow run PAUSES for an :class:`ApprovePlan` input whose
description is the plan's headline; whoever resumes it in the Prefect UI (or through the
API) answers yes or no with a reason. No answer within ``approval.timeout`` is a no.

The answer is kept in the ledger (``approvals``) before the run goes on, so the report
and ``acr-gc status`` can say who approved what and why. A no ends the run REJECTED
(exit 3 from the CLI) with the cloud untouched. Call :func:`approve_plan` from the flow
function itself: a pause inside a task would hold a task worker for as long as the
person takes.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from pydantic import Field
from prefect.input import RunInput

from acr_gc.config import Config
from acr_gc.ledger import Ledger
from acr_gc.ledger.approvals import record_approval
from acr_gc.reports.console import human_bytes, printable
from acr_gc.seat import Decision, seat

PAUSE_KEY = "acr-gc-approve-plan"


class ApprovePlan(RunInput):
    """The answer to "may this run delete the plan's expired tags?"."""

    approve: bool = Field(description="True: freeze the bucket and run GC on the plan shown. "
                                      "False: stop now; nothing in the cloud changes.")
    answered_by: str = Field(description="Who answers (one of approval.approvers, when the config lists them).")
    reason: str = Field(default="", description="Why: kept in the ledger with the run.")


class Rejected(RuntimeError):
    """The plan was not approved (a no, no answer in time, or nobody to ask); nothing changed."""


def headline(config: Config, plan: dict, folder: Path) -> str:
    """What the person approves, in a few lines: the same at the terminal and in the UI."""
    from acr_gc.reports.artifacts import artifact_key

    saving = plan["bytes_expected"] / 2**30 * config.report.price_per_gb_month
    bound = "at most " if plan.get("bytes_expected_is_upper_bound") else ""
    key = artifact_key("plan", config.target.instance_id)
    lines = [
        f"Approve the plan for ACR instance {config.target.instance_id} (bucket {config.target.bucket})?",
        f"- tags to delete: {plan['tags_expired']} of {plan['tags_total']}",
        f"- forecast: {bound}{human_bytes(plan['bytes_expected'])} freed ({plan['bytes_expected']} bytes), "
        f"saving {bound}{saving:.2f} {config.report.currency} per month",
    ]
    if plan.get("tags_possible"):  # summary.json's plan block, as far as it goes
        lines.append(f"- tags GC may delete too under another reading of the rules: {plan['tags_possible']}"
                     + (f", up to {human_bytes(plan['bytes_expected_max'])} freed in all"
                        if plan.get("bytes_expected_max") is not None else ""))
    lines += [
        f"- expired tags with no way back, allowed by policy.allow_unregenerable: {plan['tags_unregenerable']}",
        f"- the plan: artifact {key}{_ui_link(key)} in Prefect, {folder / 'plan.csv'} on disk",
    ]
    return "\n".join(lines)


def _run_link() -> str:
    """This flow run's page in the Prefect UI, when the UI's address is known."""
    from prefect.context import FlowRunContext
    from prefect.settings import PREFECT_UI_URL

    context, url = FlowRunContext.get(), PREFECT_UI_URL.value()
    if context is None or context.flow_run is None or not url:
        return ""
    return f" {url.rstrip('/')}/runs/flow-run/{context.flow_run.id}"


def _ui_link(key: str) -> str:
    """The artifact's page in the Prefect UI, when the UI's address is known."""
    from prefect.settings import PREFECT_UI_URL

    url = PREFECT_UI_URL.value()
    return f" ({url.rstrip('/')}/artifacts/key/{key})" if url else ""


def approve_plan(config: Config, ledger: Ledger, run_id: str, plan: dict, folder: Path,
                 on_waiting=None) -> Decision:
    """The decision, recorded; raises :class:`Rejected` unless approved by an allowed person.
    ``on_waiting`` is called once the run is about to pause for a person."""
    asked_at = datetime.now(timezone.utc)
    text = headline(config, plan, folder)
    decision = seat().decide(text)
    if decision is None:
        if on_waiting is not None:
            on_waiting(f"{text}\nanswer: resume the paused flow run{_run_link()} (key {PAUSE_KEY}) within "
                       f"{config.approval.timeout}")
        decision = _ask_in_prefect(config, text)
    approvers = config.approval.approvers
    if decision.approved and approvers and decision.answered_by not in approvers:
        decision = Decision(False, decision.answered_by,
                            f"{decision.answered_by!r} is not in approval.approvers; the answer does not count",
                            decision.via)
    record_approval(ledger, run_id, asked_at=asked_at, answered_at=datetime.now(timezone.utc),
                    approved=decision.approved, answered_by=decision.answered_by, reason=decision.reason,
                    via=decision.via)
    if not decision.approved:
        raise Rejected(f"plan not approved ({decision.via}, by {printable(decision.answered_by)}): "
                       f"{printable(decision.reason) or 'no reason given'}; nothing was changed")
    return decision


def _ask_in_prefect(config: Config, text: str) -> Decision:
    from prefect.exceptions import FlowPauseTimeout
    from prefect.flow_runs import pause_flow_run

    timeout = max(1, int(config.approval.timeout.total_seconds()))
    description = text.replace("\n- ", "\n\n- ", 1) + "\n\nAnswer below: approve true/false, your name, a reason."
    try:
        answer = pause_flow_run(wait_for_input=ApprovePlan.with_initial_data(description=description),
                                timeout=timeout, poll_interval=min(10, max(1, timeout // 60)), key=PAUSE_KEY)
    except FlowPauseTimeout:
        return Decision(False, "nobody", f"no answer within approval.timeout ({timeout} s)", "timeout")
    return Decision(answer.approve, answer.answered_by, answer.reason, "prefect")
