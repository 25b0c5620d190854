"""The planner's pure rules: retention, expected bytes, regenerability and the gate.

Pure functions over pandas DataFrames, no I/O but reading the operator's manifest file.
The emulator implements DESIGN section 3 on its own; this package must never import from
``acr_gc.emulator`` (nor the emulator from here), so each checks the other.

Typical use, in flow order::

    planned = plan(tags, rules)                       # expired, retained_by
    saving = expected_bytes(planned, layers)          # ExpectedBytes(bytes, is_upper_bound, by_namespace)
    verdicts = regenerability(planned, replica_tags, build_rules,
                              load_manifest(path), policy.allow_unregenerable)
    result = gate(verdicts)                           # GateResult(passed, blocking)
"""

from acr_gc.rules.expected_bytes import ExpectedBytes, expected_bytes
from acr_gc.rules.manifest import (
    AllowListError,
    ManifestError,
    compile_tag_glob,
    load_manifest,
    parse_allow_list,
    tag_glob_matches,
)
from acr_gc.rules.regenerability import GateResult, gate, regenerability
from acr_gc.rules.blast_radius import BlastRadius, blast_radius
from acr_gc.rules.retention import (
    ALL_READINGS,
    CERTAIN,
    DEFAULT_READING,
    NO_RULE,
    POSSIBLE,
    FrameContractError,
    LifecycleRule,
    Reading,
    RuleError,
    parse_rules,
    plan,
    rule_table,
    running_by_themselves,
)

__all__ = [
    "ALL_READINGS",
    "CERTAIN",
    "DEFAULT_READING",
    "NO_RULE",
    "POSSIBLE",
    "BlastRadius",
    "Reading",
    "blast_radius",
    "rule_table",
    "running_by_themselves",
    "AllowListError",
    "ExpectedBytes",
    "FrameContractError",
    "GateResult",
    "LifecycleRule",
    "ManifestError",
    "RuleError",
    "compile_tag_glob",
    "expected_bytes",
    "gate",
    "load_manifest",
    "parse_allow_list",
    "parse_rules",
    "plan",
    "regenerability",
    "tag_glob_matches",
]
