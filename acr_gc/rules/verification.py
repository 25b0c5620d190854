"""After GC: was exactly the plan deleted? (pure; DESIGN section 2, "verify deletions").

``unexpected`` — tags present before GC, absent after, and not in the verified plan
(certain ∪ possible): a safety failure, the run fails loudly and lists them. ``missed`` —
``certain`` planned tags still present (a ``possible`` tag that survived only tells which
readings the cloud follows): expected after a cancelled or failed task, a warning otherwise.

:func:`readings_consistent` tells, after a GC that ran to its end, which readings of the
lifecycle rules (``acr_gc.rules.retention.ALL_READINGS``) predicted exactly what the cloud
deleted; :func:`outside_gated` is the re-check right before GC: the tags a fresh plan
would let GC delete that the gate did not see.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from acr_gc.rules.retention import ALL_READINGS, POSSIBLE, READING_BITS, Reading, require_columns

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
    must_go = planned_expired
    if "certainty" in planned_expired:
        must_go = planned_expired[planned_expired["certainty"] != POSSIBLE]
    still = must_go[KEY].drop_duplicates().merge(after_keys, on=KEY, how="inner").reset_index(drop=True)
    return Verification(deleted=deleted, unexpected=unexpected, missed=still)


def readings_consistent(planned: pd.DataFrame, deleted: pd.DataFrame,
                        readings: tuple[Reading, ...] = ALL_READINGS) -> list[str]:
    """The names (``combination/count_regexp/regexp_match``) of the readings whose
    prediction agrees with what the cloud deleted, over the tags the plan saw.

    ``planned``: the plan (namespace, repo, tag, ``deleted_max``, ``deleted_min``: per
    reading, may / surely deletes); ``deleted``: namespace, repo, tag of the planned tags
    GC deleted. A reading agrees when every deleted tag is one it may delete and every tag
    it surely deletes was deleted. Call it only after a GC that ran to its end: a cancelled
    task leaves tags every reading deletes.
    """
    require_columns(planned, (*KEY, "deleted_max", "deleted_min"), "planned")
    gone = planned[KEY].merge(deleted[KEY].drop_duplicates(), on=KEY, how="left", indicator=True)
    was_deleted = (gone["_merge"] == "both").to_numpy()
    may = planned["deleted_max"].to_numpy(dtype=np.int64)
    must = planned["deleted_min"].to_numpy(dtype=np.int64)
    agree = []
    for reading in readings:
        bit = READING_BITS[reading]
        may_r, must_r = (may & bit) != 0, (must & bit) != 0
        if not (was_deleted & ~may_r).any() and not (must_r & ~was_deleted).any():
            agree.append(reading.name)
    return agree


def outside_gated(fresh: pd.DataFrame, gated: pd.DataFrame) -> pd.DataFrame:
    """The re-check before GC: the tags the fresh plan would let GC delete (``expired``:
    certain ∪ possible) that are not in the gated plan's expired set with the same digest.

    Empty: the new plan lies inside the gated one and GC may start. A tag re-pushed with
    another digest since the gate counts as outside: its image was never gated.
    """
    require_columns(fresh, (*KEY, "digest", "expired"), "fresh plan")
    require_columns(gated, (*KEY, "digest", "expired"), "gated plan")
    wanted = fresh.loc[fresh["expired"].astype(bool), [*KEY, "digest"]].drop_duplicates()
    allowed = gated.loc[gated["expired"].astype(bool), [*KEY, "digest"]].drop_duplicates()
    merged = wanted.merge(allowed, on=[*KEY, "digest"], how="left", indicator=True)
    return merged[merged["_merge"] == "left_only"].drop(columns="_merge").reset_index(drop=True)
