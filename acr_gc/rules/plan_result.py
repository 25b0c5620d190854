"""What the plan step decided, as one value: the flow, the files, the artifacts and the
console table all read it (so ``reports/`` imports it from here, never from ``tasks/``)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from acr_gc.rules.expected_bytes import ExpectedBytes
from acr_gc.rules.regenerability import GateResult
from acr_gc.rules.retention import POSSIBLE


@dataclass
class PlanResult:
    """Everything the plan step decided, for the files, the artifacts and the flow."""

    verdicts: pd.DataFrame  # tags + expired, certainty, retained_by, regenerable_by, regenerate_from, allowed
    expected: ExpectedBytes  # freed by the certain tags
    gate: GateResult
    charts: int
    bucket_bytes: int | None = None  # the bucket's storage when planned (GetBucketStat)
    expected_max: ExpectedBytes | None = None  # freed by certain ∪ possible
    # the exact forecast (target.registry_endpoint set): blob objects no tag reaches before
    # the run, and the expiring digests whose manifests could not be read (counted by image size)
    bytes_unreferenced_before: int | None = None
    unreadable: tuple[str, ...] = ()
    rule_table: pd.DataFrame | None = None  # rule_table: dry-run, policies, rules running by themselves

    def _clamped(self, expected: ExpectedBytes) -> int:
        """An upper bound from image sizes (shared layers counted once per image) can exceed
        the whole bucket, and the bucket's size is an upper bound too, so the smaller of the
        two is reported."""
        if expected.is_upper_bound and self.bucket_bytes is not None:
            return min(int(expected.bytes), int(self.bucket_bytes))
        return int(expected.bytes)

    @property
    def bytes_expected(self) -> int:
        """The expected saving from the certain tags."""
        return self._clamped(self.expected)

    @property
    def bytes_expected_max(self) -> int:
        """The expected saving should every possible tag go too."""
        return self._clamped(self.expected_max or self.expected)

    @property
    def summary(self) -> dict:
        expired = self.verdicts["expired"]
        possible = (self.verdicts["certainty"] == POSSIBLE) if "certainty" in self.verdicts else expired & False
        return {
            "tags_total": int(len(self.verdicts)),
            "tags_expired": int(expired.sum()),
            "tags_possible": int(possible.sum()),
            "tags_unregenerable": int((self.verdicts["regenerable_by"] == "none").sum()),
            "bytes_expected": self.bytes_expected,
            "bytes_expected_max": self.bytes_expected_max,
            "bytes_expected_is_upper_bound": bool(self.expected.is_upper_bound
                                                  or (self.expected_max is not None
                                                      and self.expected_max.is_upper_bound)),
            "bytes_unreferenced_before": self.bytes_unreferenced_before,
        }

    def per_namespace(self) -> pd.DataFrame:
        """Tags, expired, unregenerable and expected bytes per namespace."""
        v = self.verdicts
        table = (
            v.assign(unregenerable=v["regenerable_by"] == "none")
            .groupby("namespace")
            .agg(tags=("tag", "size"), expired=("expired", "sum"), unregenerable=("unregenerable", "sum"))
        )
        by_ns = self.expected.by_namespace.set_index("namespace")["bytes"] if len(self.expected.by_namespace) else None
        table["expected_bytes"] = by_ns.reindex(table.index).fillna(0).astype("int64") if by_ns is not None else 0
        return table.reset_index().astype({"expired": "int64", "unregenerable": "int64"})
