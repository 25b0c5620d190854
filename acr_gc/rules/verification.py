"""After GC: was exactly the plan deleted? (pure; DESIGN section 2, "verify deletions").

``unexpected`` — tags present before GC, absent after, and not in the verified plan:
a safety failure, the run fails loudly and lists them. ``missed`` — planned tags still
present: expected after a cancelled or failed task, a warning otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

KEY = ["namespace", "repo", "tag"]


@dataclass
class Verification:
    deleted: pd.DataFrame  # namespace, repo, tag, digest: gone since the inventory
    unexpected: pd.DataFrame  # deleted but not planned
    missed: pd.DataFrame  # planned but still there


def verify_deletions(before: pd.DataFrame, planned_expired: pd.DataFrame, after: pd.DataFrame) -> Verification:
    before_keys = before[KEY + ["digest"]].drop_duplicates(KEY)
    after_keys = after[KEY].drop_duplicates()
    gone = before_keys.merge(after_keys, on=KEY, how="left", indicator=True)
    deleted = gone[gone["_merge"] == "left_only"].drop(columns="_merge").reset_index(drop=True)
    planned = planned_expired[KEY].drop_duplicates()
    flagged = deleted.merge(planned, on=KEY, how="left", indicator=True)
    unexpected = flagged[flagged["_merge"] == "left_only"].drop(columns="_merge").reset_index(drop=True)
    still = planned.merge(after_keys, on=KEY, how="inner").reset_index(drop=True)
    return Verification(deleted=deleted, unexpected=unexpected, missed=still)
