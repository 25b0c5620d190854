"""``summary.json``: the machine-readable contract of a run (DESIGN section 10).

Other programs read this file, so its shape is fixed here once, as pydantic models with
every field always present (``null`` where a step has not happened yet).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, field_validator

# The pipeline's states (DESIGN section 10), plus PLANNED for an `acr-gc plan` run whose
# gate passed: it changed nothing and has no GC to report. Never RUNNING: summary.json
# says how a run ended (or how its plan came out).
from acr_gc.ledger.states import RunState


class _Block(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PlanSummary(_Block):
    tags_total: int
    tags_expired: int  # certain ∪ possible: what the gate covered
    tags_unregenerable: int
    bytes_expected: int  # freed by the certain tags
    bytes_expected_is_upper_bound: bool
    bytes_unreferenced_before: int | None = None  # blob objects no tag reaches (exact forecast only)
    tags_possible: int = 0  # deleted under some reading of the rules only
    bytes_expected_max: int | None = None  # freed by certain ∪ possible


class GcSummary(_Block):
    driver: str | None = None
    task_id: str | None = None
    state: str | None = None
    tags_deleted: int | None = None


class ChecksSummary(_Block):
    unexpected_deletions: int | None = None
    missed_deletions: int | None = None
    # true | false | "partial" (the policy changed while frozen: only acr-gc's statement was removed)
    freeze_restored: bool | Literal["partial"] | None = None
    # the readings of the lifecycle rules (combination/count_regexp/regexp_match) whose
    # prediction matched what GC deleted; null until a GC has run to its end
    readings_consistent: list[str] | None = None


class StorageSummary(_Block):
    before_bytes: int | None = None
    after_bytes: int | None = None
    reclaimed_bytes: int | None = None
    reclaimed_pct: float | None = None
    samples: int = 0
    window_end: str | None = None
    window_complete: bool = False


class CostSummary(_Block):
    currency: str
    price_per_gb_month: float
    saving_per_month: float | None = None


class Summary(_Block):
    run_id: str
    instance_id: str
    bucket: str
    state: RunState
    plan: PlanSummary | None = None
    gc: GcSummary = GcSummary()
    checks: ChecksSummary = ChecksSummary()
    storage: StorageSummary = StorageSummary()
    cost: CostSummary

    @field_validator("state")
    @classmethod
    def _ended(cls, state: RunState) -> RunState:
        if state is RunState.RUNNING:
            raise ValueError("summary.json holds how a run ended: never RUNNING")
        return state
