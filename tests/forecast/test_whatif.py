"""The what-if variants' rule transforms (pure)."""

from __future__ import annotations

from datetime import datetime, timezone

import pandas as pd

from acr_gc import rules
from acr_gc.rules.whatif import keep_variant, older_than, rules_frame

NOW = datetime(2024, 6, 1, tzinfo=timezone.utc)


def tags() -> pd.DataFrame:
    # repo a: 4 tags updated on days 1..4 of May; repo b: 1 tag
    rows = [("ns", "a", "r-a", f"t{d}", f"sha256:{d}", 10, f"2024-05-0{d}T00:00:00Z") for d in (1, 2, 3, 4)]
    rows.append(("ns", "b", "r-b", "only", "sha256:b", 10, "2024-05-01T00:00:00Z"))
    frame = pd.DataFrame(rows, columns=["namespace", "repo", "repo_id", "tag", "digest", "image_size", "updated"])
    frame["updated"] = pd.to_datetime(frame["updated"], utc=True)
    return frame


def expired(planned: pd.DataFrame) -> set[str]:
    return set(planned["tag"][planned["expired"]])


def test_keep_n_on_an_instance_without_rules_and_with_rules():
    assert expired(rules.plan(tags(), keep_variant(rules_frame([], "none"), 2))) == {"t1", "t2"}
    current = rules_frame([{"scope": "REPO", "namespace": "ns", "repo": "a", "retention_tag_count": 3}], "cur")
    assert expired(rules.plan(tags(), current)) == {"t1"}
    assert expired(rules.plan(tags(), keep_variant(current, 1))) == {"t1", "t2", "t3"}


def test_older_than_keeps_recent_expired_tags():
    planned = rules.plan(tags(), rules_frame([{"scope": "INSTANCE", "retention_tag_count": 1}], "i"))
    assert expired(planned) == {"t1", "t2", "t3"}
    # 2024-06-01 minus 29.5 days = 2024-05-02 12:00: only t1 and t2 are older
    assert expired(older_than(planned, 29.5, NOW)) == {"t1", "t2"}
