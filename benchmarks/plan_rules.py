"""Benchmark the planner's pure rules at 10^6 tags.

    .venv/bin/python benchmarks/plan_rules.py [--repos 10000] [--tags-per-repo 100] [--seed 7]

Builds a synthetic instance (100 namespaces x 100 repositories x 100 tags by default:
tags named release-N / vN / sha-<hex> / build-N, update times with many ties, ~5% of tags
aliasing another tag's digest; an INSTANCE count rule, a disabled INSTANCE rule, NAMESPACE
rules with regexps, REPO rules with regexps; layers unknown), then times
plan (conservative: all eight readings of the rules; ``plan_one_reading_s`` is the same with
one pinned reading) -> expected_bytes -> regenerability -> gate and prints one JSON line:
{rows, plan_s, plan_one_reading_s, expected_bytes_s, regenerability_s, gate_s, total_s, peak_rss_mb, ...}.
The target is total_s <= 10 on a 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from acr_gc.rules import DEFAULT_READING, expected_bytes, gate, parse_allow_list, plan, regenerability  # noqa: E402


def synthetic_instance(n_repos: int, tags_per_repo: int, seed: int) -> dict[str, pd.DataFrame]:
    """Inputs of every rule function, shaped exactly like the inventory's frames."""
    rng = np.random.default_rng(seed)
    n_namespaces = max(1, n_repos // 100)
    repo_index = np.repeat(np.arange(n_repos), tags_per_repo)
    slot = np.tile(np.arange(tags_per_repo), n_repos)
    namespaces = np.array([f"ns{i:03d}" for i in range(n_namespaces)], dtype=object)
    repo_names = np.array([f"app{i:05d}" for i in range(n_repos)], dtype=object)
    hexes = rng.integers(0, 2**32, size=len(slot))
    kind = slot % 4
    tag = np.where(
        kind == 0,
        np.char.add("release-", slot.astype(str)),
        np.where(
            kind == 1,
            np.char.add("v", slot.astype(str)),
            np.where(kind == 2, np.char.add("sha-", np.char.mod("%08x", hexes)), np.char.add("build-", slot.astype(str))),
        ),
    ).astype(object)
    digest_id = np.arange(len(slot))
    alias = rng.random(len(slot)) < 0.05
    digest_id[alias] = (repo_index[alias] * tags_per_repo) + rng.integers(0, tags_per_repo, alias.sum())
    digest = np.char.add("sha256:", np.char.mod("%064x", digest_id)).astype(object)
    base = np.datetime64("2024-01-01T00:00:00", "ns")
    minutes = rng.integers(0, 50, size=len(slot)) * 60 * 10**9  # 50 distinct times per repo: ties
    tags = pd.DataFrame(
        {
            "namespace": namespaces[repo_index % n_namespaces],
            "repo": repo_names[repo_index],
            "repo_id": np.char.add("crr-", repo_index.astype(str)).astype(object),
            "tag": tag,
            "digest": digest,
            "image_size": rng.integers(10**6, 10**9, size=len(slot)).astype(np.int64),
            "updated": pd.to_datetime(base + minutes.astype("timedelta64[ns]"), utc=True),
        }
    )
    # Alias digests carry the aliased image's size.
    tags["image_size"] = tags.groupby("digest")["image_size"].transform("first")

    rule_rows = [
        ("inst-keep30", "INSTANCE", None, None, 30, None, True),
        ("inst-off", "INSTANCE", None, None, 0, None, False),
    ]
    for i in range(0, n_namespaces, 2):
        rule_rows.append((f"ns-{i}", "NAMESPACE", namespaces[i], None, 10, r"release-\d+", True))
    for i in range(1, n_namespaces, 10):
        rule_rows.append((f"ns-{i}", "NAMESPACE", namespaces[i], None, None, r"v[1-3]\d", True))
    for r in range(0, n_repos, 20):
        rule_rows.append(
            (f"repo-{r}", "REPO", namespaces[r % n_namespaces], repo_names[r], 5 if r % 40 else None, r"sha-[0-7].*", True)
        )
    rules = pd.DataFrame(
        rule_rows,
        columns=["rule_id", "scope", "namespace", "repo", "retention_tag_count", "tag_regexp", "enable_delete_tag"],
    ).astype({"retention_tag_count": "Int64"})

    replica_repos = np.arange(0, n_repos, 10)
    on_replica = np.isin(repo_index, replica_repos)
    replica_tags = tags.loc[on_replica, ["namespace", "repo", "tag", "digest"]].copy()
    drift = rng.random(len(replica_tags)) < 0.1
    replica_tags.loc[drift, "digest"] = "sha256:drifted"
    replica_tags["target_instance_id"] = "cri-replica"

    build_repos = np.arange(0, n_repos, 5)
    build_rules = pd.DataFrame(
        {
            "namespace": namespaces[build_repos % n_namespaces],
            "repo": repo_names[build_repos],
            "image_tag": "release-*",
            "has_source_code": build_repos % 4 != 0,
        }
    )
    manifest_repos = np.arange(0, n_repos, 3)
    manifest_entries = pd.DataFrame(
        {
            "namespace": namespaces[manifest_repos % n_namespaces],
            "repo": repo_names[manifest_repos],
            "tag_glob": "build-?*",
            "source": "ci: make image",
            "line_no": np.arange(2, len(manifest_repos) + 2, dtype=np.int64),
        }
    )
    allow = [f"{namespaces[r % n_namespaces]}/{repo_names[r]}:sha-*" for r in range(1, n_repos, 7)]
    return {
        "tags": tags,
        "rules": rules,
        "replica_tags": replica_tags,
        "build_rules": build_rules,
        "manifest_entries": manifest_entries,
        "allow": allow,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--repos", type=int, default=10_000)
    parser.add_argument("--tags-per-repo", type=int, default=100)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    data = synthetic_instance(args.repos, args.tags_per_repo, args.seed)
    t_one = time.perf_counter()
    plan(data["tags"], data["rules"], readings=(DEFAULT_READING,))  # one pinned reading
    started = time.perf_counter()
    planned = plan(data["tags"], data["rules"], readings=None)  # conservative: all eight, as runs do
    t_plan = time.perf_counter()
    saving = expected_bytes(planned, layers=None)
    t_bytes = time.perf_counter()
    verdicts = regenerability(
        planned, data["replica_tags"], data["build_rules"], data["manifest_entries"], parse_allow_list(data["allow"])
    )
    t_regen = time.perf_counter()
    result = gate(verdicts)
    t_gate = time.perf_counter()

    print(
        json.dumps(
            {
                "rows": len(planned),
                "plan_s": round(t_plan - started, 3),
                "plan_one_reading_s": round(started - t_one, 3),
                "tags_possible": int((planned["certainty"] == "possible").sum()),
                "expected_bytes_s": round(t_bytes - t_plan, 3),
                "regenerability_s": round(t_regen - t_bytes, 3),
                "gate_s": round(t_gate - t_regen, 3),
                "total_s": round(t_gate - started, 3),
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                "rules": len(data["rules"]),
                "expired": int(planned["expired"].sum()),
                "regenerable_by": verdicts.loc[verdicts["expired"], "regenerable_by"].value_counts().to_dict(),
                "bytes_expected": saving.bytes,
                "bytes_expected_is_upper_bound": saving.is_upper_bound,
                "gate_passed": result.passed,
                "blocking": len(result.blocking),
            }
        )
    )


if __name__ == "__main__":
    main()
