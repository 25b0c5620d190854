"""The soak benchmark (benchmarks/soak.py) judges runs correctly: two faulty runs end
COMPLETE with its invariants holding, and what it left behind for the last run agrees
with an independent reading of the same instance.

The script is run as a program (its exit code and last JSON line are its contract). Its
own deletion check uses the emulator's retention; this test re-derives the expected
survivors with the planner's retention (``acr_gc.rules.retention``) from the dataset the
generator makes for the recorded seed, so the two implementations of DESIGN section 3
check each other, and reads the run's ledger and truth files itself.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]
SOAK = ROOT / "benchmarks" / "soak.py"
BUCKET = "cri-gen-storage"


def expected_survivors(dataset: dict) -> dict[str, list[str]]:
    """cri-gen's tags per repository after GC, by the planner's rules (not the emulator's)."""
    from acr_gc.rules.retention import plan

    instance = next(i for i in dataset["instances"] if i["instance_id"] == "cri-gen")
    tags = pd.DataFrame(
        [{"namespace": r["namespace"], "repo": r["name"], "repo_id": f"{r['namespace']}/{r['name']}",
          "tag": t["tag"], "digest": t["digest"], "image_size": sum(dataset["layers"][x] for x in t["layers"]),
          "updated": t["updated"]} for r in instance["repositories"] for t in r["tags"]])
    tags["updated"] = pd.to_datetime(tags["updated"], utc=True)
    rules = pd.DataFrame([{"rule_id": str(n), **rule} for n, rule in enumerate(instance["lifecycle_rules"])])
    rules["retention_tag_count"] = rules["retention_tag_count"].astype("Int64")
    planned = plan(tags, rules).assign(full_name=lambda f: f["namespace"] + "/" + f["repo"])
    return {name: sorted(group.loc[~group["expired"], "tag"]) for name, group in planned.groupby("full_name")}


@pytest.mark.slow
def test_two_faulty_runs_pass_and_the_last_run_agrees_with_an_independent_check(prefect_api_url, tmp_path):
    """Exit 0 and a JSON line whose invariants hold (faults were injected and retried, 2/2
    COMPLETE, 0 unexpected deletions, 0 freezes left, storage figures = truth); then, for
    run 2: its tags after GC are exactly the planner-rule survivors of the regenerated
    dataset, deleted_tags.csv names exactly the removed tags, summary.json's storage
    figures equal the saved truth, the bucket policy is back to none and every ledger
    freeze is restored."""
    from sqlalchemy import create_engine, select

    from acr_gc.emulator.generator import generate
    from acr_gc.ledger.models import Freeze

    out = tmp_path / "soak"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALIBABA_CLOUD_", "PREFECT_API_"))}
    done = subprocess.run(
        [sys.executable, str(SOAK), "--runs", "2", "--fault-rate", "0.05", "--repos", "3", "4",
         "--tags", "35", "45", "--seed", "11", "--day-seconds", "0.1", "--out", str(out), "--prefect-api-url", prefect_api_url],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=240,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["passed"] is True and figures["failed"] == []
    assert (figures["runs"], figures["runs_completed"], figures["storage_matches_truth_runs"]) == (2, 2, 2)
    assert figures["unexpected_deletions"] == figures["unexpected_deletions_per_summary"] == 0
    assert figures["freezes_left"] == figures["ledger_freezes_not_restored"] == 0
    assert figures["emulator_faults"] > 0, "no fault was injected: the soak proved nothing about retries"
    assert figures["attempts"] == figures["emulator_requests"]
    assert figures["retries"] <= figures["emulator_faults"] <= figures["retries"] + figures["failed_calls"]

    run_dir = out / "run-02"
    record = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    dataset = generate(record["repos"], record["tags_per_repo"], seed=record["seed"])
    before = json.loads((run_dir / "truth-before.json").read_text(encoding="utf-8"))
    after = json.loads((run_dir / "truth-after.json").read_text(encoding="utf-8"))
    loaded = {f"{r['namespace']}/{r['name']}": sorted(t["tag"] for t in r["tags"])
              for r in dataset["instances"][0]["repositories"]}
    assert before["instances"]["cri-gen"]["tags"] == loaded

    survivors = expected_survivors(dataset)
    assert after["instances"]["cri-gen"]["tags"] == survivors
    removed = {(repo, tag) for repo, tags in loaded.items() for tag in set(tags) - set(survivors[repo])}
    assert removed, "the sizes expire nothing: the deletion checks would be vacuous"
    assert after["instances"]["cri-gen-replica"]["tags"] == before["instances"]["cri-gen-replica"]["tags"]

    folder = run_dir / "cri-gen" / record["run_id"]
    summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    assert summary["state"] == "COMPLETE"
    assert summary["checks"]["unexpected_deletions"] == 0
    assert summary["storage"]["before_bytes"] == before["buckets"][BUCKET]["storage_bytes"]
    assert summary["storage"]["after_bytes"] == after["buckets"][BUCKET]["storage_bytes"]
    assert after["buckets"][BUCKET]["storage_bytes"] < before["buckets"][BUCKET]["storage_bytes"]
    with open(folder / "deleted_tags.csv", newline="", encoding="utf-8") as handle:
        listed = {(f"{row['namespace']}/{row['repo']}", row["tag"]) for row in csv.DictReader(handle)}
    assert listed == removed

    assert all(bucket["policy"] is None for bucket in after["buckets"].values())
    engine = create_engine(f"sqlite:///{run_dir / 'ledger.db'}")
    try:
        with engine.connect() as connection:
            statuses = list(connection.scalars(select(Freeze.status).where(Freeze.run_id == record["run_id"])))
    finally:
        engine.dispose()
    assert statuses == ["restored"]
