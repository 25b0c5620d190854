"""The blast radius (DESIGN section 4): how much a plan may delete at all.

A plan can pass the regenerability gate and still be a disaster -- a count-0 rule typed
by mistake empties a repository, a wrong reading of the rules deletes most of an
instance. So a plan that deletes more than ``max_delete_share`` of the instance's tags,
or every tag of a repository the operator has not listed in ``allow_emptied``, stops the
run before any change (exit 3), naming the repositories. "Deletes" means certain ∪
possible (the ``expired`` column), as everywhere the gate looks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd

from acr_gc.rules.retention import require_columns

MAX_NAMED = 10  # repositories named in the one-line message


@dataclass(frozen=True)
class BlastRadius:
    share: float  # expired / all tags of the instance
    emptied: list[str] = field(default_factory=list)  # "ns/repo" losing every tag, not allowed
    too_large: bool = False

    @property
    def passed(self) -> bool:
        return not self.too_large and not self.emptied

    def message(self, max_delete_share: float) -> str | None:
        """One line for the operator, or None when the plan is within bounds."""
        parts = []
        if self.too_large:
            parts.append(f"the plan deletes {self.share:.0%} of the instance's tags, more than "
                         f"policy.max_delete_share {max_delete_share:.0%}")
        if self.emptied:
            named = ", ".join(self.emptied[:MAX_NAMED]) + (", …" if len(self.emptied) > MAX_NAMED else "")
            parts.append(f"it deletes every tag of {len(self.emptied)} repositor"
                         f"{'y' if len(self.emptied) == 1 else 'ies'} ({named}): list them in "
                         "policy.allow_emptied if that is intended")
        return "; ".join(parts) or None


def blast_radius(planned: pd.DataFrame, max_delete_share: float, allow_emptied: Sequence[str] = ()) -> BlastRadius:
    """Measure ``planned`` (namespace, repo, expired) against the two limits."""
    require_columns(planned, ("namespace", "repo", "expired"), "planned")
    if len(planned) == 0:
        return BlastRadius(share=0.0)
    expired = planned["expired"].astype(bool)
    share = float(expired.mean())
    per_repo = expired.groupby([planned["namespace"], planned["repo"]], sort=True).all()
    allowed = set(allow_emptied)
    emptied = [f"{ns}/{repo}" for (ns, repo), every in per_repo.items() if every and f"{ns}/{repo}" not in allowed]
    return BlastRadius(share=share, emptied=emptied, too_large=share > max_delete_share)
