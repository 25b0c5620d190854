"""Prefect task runs of the plan flow grow with batches of repositories, never with tags.

The flow runs in this process against the session's Prefect test server; the task runs
and artifacts are read back through the Prefect client API, as the dashboard reads them.
"""

from __future__ import annotations

import math
from collections import Counter

import pytest

from acr_gc.emulator.generator import CREDENTIALS, generate
from emulator_kit import new_emulator

pytestmark = pytest.mark.slow

REPOS = 250
# One run each of: list-repositories, list-lifecycle-rules, list-charts, plan-retention,
# verify-regenerable; then one list-tags run per batch of repositories.
# issue 12: the plan checks the bucket's release window too (check-bucket-release)
FIXED_STEPS = {"list-repositories", "list-lifecycle-rules", "list-charts", "bucket-size", "plan-retention", "verify-regenerable",
               "check-bucket-release",
               # issue 16: the gate's reads start on each tag batch as it completes (one step)
               "read-gate-inputs"}


@pytest.fixture(scope="module")
def generated_emulator():
    with new_emulator(generate(repos=REPOS, tags_per_repo=8, seed=3)) as emu:
        yield emu


def _config(emu, out_dir):
    from acr_gc.config import Config

    return Config.model_validate({
        "target": {"region": "cn-hangzhou", "instance_id": "cri-gen", "bucket": "cri-gen-storage",
                   "acr_endpoint": emu.acr_endpoint, "oss_endpoint": emu.oss_endpoint},
        "freeze": {"principals": ["acs:ram::1234567890:user/ci-pusher"]},
        "report": {"out_dir": str(out_dir)},
        "api": {"qps": 1000, "concurrency": 8},
    })


def _task_runs_and_artifacts(flow_run_id):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        FlowRunFilter,
        FlowRunFilterId,
    )

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    return runs, artifacts


@pytest.mark.parametrize("tags_per_repo", [8, 2])
def test_task_runs_per_batch_not_per_tag(prefect_api_url, generated_emulator, tmp_path, monkeypatch, tags_per_repo):
    from acr_gc.cloud import credentials
    from acr_gc.flows.plan import plan_instance
    from acr_gc.reports.artifacts import artifact_key
    from acr_gc.tasks.planning import REPOS_PER_BATCH

    emu = generated_emulator
    dataset = generate(repos=REPOS, tags_per_repo=tags_per_repo, seed=3)
    emu.load(dataset)
    tags_in_dataset = sum(
        len(r["tags"]) for inst in dataset["instances"] if inst["instance_id"] == "cri-gen"
        for r in inst["repositories"]
    )
    assert tags_in_dataset == REPOS * tags_per_repo

    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", CREDENTIALS[0]["access_key_id"])
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", CREDENTIALS[0]["access_key_secret"])
    credentials.reset_chain()

    state = plan_instance(_config(emu, tmp_path), return_state=True)
    assert state.is_completed(), state
    outcome = state.result()
    assert outcome.result.summary["tags_total"] == REPOS * tags_per_repo

    runs, artifacts = _task_runs_and_artifacts(state.state_details.flow_run_id)
    names = Counter(run.name.rsplit("-", 1)[0] for run in runs)
    batches = math.ceil(REPOS / REPOS_PER_BATCH)
    assert batches == 3  # 250 repositories, 100 per batch
    assert names == Counter({**{step: 1 for step in FIXED_STEPS}, "list-tags": batches}), names
    assert len(runs) == len(FIXED_STEPS) + batches  # 11 task runs for 2,000 or 500 tags
    assert all(run.state.is_completed() for run in runs)

    tables = {a.key: a for a in artifacts if a.type == "table"}
    for kind in ("inventory", "plan", "gate"):
        key = artifact_key(kind, "cri-gen")
        assert key in tables, (key, sorted(tables))
        assert tables[key].data, key  # a table with rows
