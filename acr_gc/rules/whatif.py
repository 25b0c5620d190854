"""What-if rule variants (``acr-gc forecast``): alternative retention rules planned against one
inventory and one manifest graph, so finance can compare policies before choosing one. Pure."""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd

from acr_gc.rules.retention import RULE_COLUMNS

RULE_KEYS = ("scope", "namespace", "repo", "retention_tag_count", "tag_regexp", "enable_delete_tag")


def keep_variant(rules: pd.DataFrame, keep: int) -> pd.DataFrame:
    """Every rule retains ``keep`` tags (its other conditions unchanged); an instance without
    rules gets one instance-wide rule that does."""
    if len(rules) == 0:
        return rules_frame([{"scope": "INSTANCE", "retention_tag_count": keep, "enable_delete_tag": True}], "keep")
    variant = rules.copy()
    variant["retention_tag_count"] = pd.array([keep] * len(variant), dtype="Int64")
    return variant


def rules_frame(rows: list[dict], prefix: str) -> pd.DataFrame:
    """A rules frame (the inventory's columns) from rule dicts as a ``--rules`` file gives them."""
    records = []
    for i, row in enumerate(rows):
        unknown = set(row) - set(RULE_KEYS)
        if unknown:
            raise ValueError(f"rule {i + 1}: unknown key {sorted(unknown)[0]!r} (known: {', '.join(RULE_KEYS)})")
        if row.get("scope") not in ("INSTANCE", "NAMESPACE", "REPO"):
            raise ValueError(f"rule {i + 1}: scope must be INSTANCE, NAMESPACE or REPO")
        count = row.get("retention_tag_count")
        if count is not None and (not isinstance(count, int) or isinstance(count, bool) or count < 0):
            raise ValueError(f"rule {i + 1}: retention_tag_count must be a whole number ≥ 0")
        records.append({"rule_id": f"{prefix}-{i + 1}", "scope": row["scope"], "namespace": row.get("namespace"),
                        "repo": row.get("repo"), "retention_tag_count": count, "tag_regexp": row.get("tag_regexp"),
                        "enable_delete_tag": bool(row.get("enable_delete_tag", True))})
    frame = pd.DataFrame(records, columns=list(RULE_COLUMNS))
    frame["retention_tag_count"] = frame["retention_tag_count"].astype("Int64")
    frame["enable_delete_tag"] = frame["enable_delete_tag"].astype(bool)
    return frame


def older_than(planned: pd.DataFrame, days: float, now: datetime) -> pd.DataFrame:
    """Only the expired tags not updated for ``days`` days stay expired."""
    cutoff = pd.Timestamp(now - timedelta(days=days))
    expired = planned["expired"] & (planned["updated"] < cutoff)
    if "certainty" not in planned:
        return planned.assign(expired=expired)
    return planned.assign(expired=expired, certainty=planned["certainty"].where(expired, ""))
