"""What the plan step decided, as one value: the flow, the files, the artifacts and the
console table all read it (so ``reports/`` imports it from here, never from ``tasks/``)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from acr_gc.rules.expected_bytes import ExpectedBytes
from acr_gc.rules.regenerability import GateResult


@dataclass
class PlanResult:
    """Everything the plan step decided, for the files, the artifacts and the flow."""

    verdicts: pd.DataFrame  # tags + expired, retained_by, regenerable_by, regenerate_from, allowed
    expected: ExpectedBytes
    gate: GateResult
    charts: int
    bucket_bytes: int | None = None  # the bucket's storage when planned (GetBucketStat)

    @property
    def bytes_expected(self) -> int:
        """The expected saving; an upper bound from image sizes (shared layers counted once
        per image) can exceed the whole bucket, and the bucket's size is an upper bound too,
        so the smaller of the two is reported."""
        if self.expected.is_upper_bound and self.bucket_bytes is not None:
            return min(int(self.expected.bytes), int(self.bucket_bytes))
        return int(self.expected.bytes)

    @property
    def summary(self) -> dict:
        expired = self.verdicts["expired"]
        return {
            "tags_total": int(len(self.verdicts)),
            "tags_expired": int(expired.sum()),
            "tags_unregenerable": int((self.verdicts["regenerable_by"] == "none").sum()),
            "bytes_expected": self.bytes_expected,
            "bytes_expected_is_upper_bound": bool(self.expected.is_upper_bound),
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
