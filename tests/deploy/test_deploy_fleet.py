"""The fleet flow over three emulated instances (issue 6, DESIGN section 11): one
emulator holding cri-fleet-a, cri-fleet-b and cri-fleet-c (three buckets); C's gate blocks
(apps/legacy:old expires with no way to regenerate it). ``reclaim_fleet`` runs in this
process against a real ``prefect server start`` (deploy_support.deployment_server): A and B
reclaimed (their tags left = the hand-worked retained set), C BLOCKED with nothing changed,
the fleet summary listing each outcome, and three child ``reclaim-storage`` flow runs whose
parent task run belongs to the fleet run (read back through the API).

Then the same three instances run one after another with ``reclaim_storage`` (emulator
reset in between) and both wall times are printed. GC runs at 5 tags/s and A and B each
have 30 expired tags, so each GC takes ~6 s of real time: concurrency shows.
"""

from __future__ import annotations

import time

import pytest

import deploy_support as ds

pytestmark = pytest.mark.slow

GC_TAGS_PER_SECOND = 5  # 30 tags: ~6 s of GC per reclaimed instance


@pytest.fixture(scope="module")
def server():
    with ds.deployment_server() as server:
        yield server


@pytest.fixture
def fleet_emu():
    from emulator_kit import new_emulator

    with new_emulator(ds.fleet_dataset(), gc_tags_per_second=GC_TAGS_PER_SECOND) as emu:
        yield emu


@pytest.fixture
def keys(monkeypatch):
    from acr_gc.cloud.credentials import reset_chain

    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", ds.AK)
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", ds.SECRET)
    reset_chain()
    yield
    reset_chain()


def _configs(emu, root):
    from acr_gc.config import Config

    ledger = root / "ledger.db"  # one ledger for the fleet, as in production
    return [Config.model_validate(ds.config_dict(emu, iid, root, ledger=ledger))
            for iid in (ds.FLEET_A, ds.FLEET_B, ds.FLEET_C)]


def _cloud(truth: dict, instance_id: str) -> dict:
    bucket = truth["buckets"][ds.bucket_of(instance_id)]
    inst = truth["instances"][instance_id]
    return {"tags": inst["tags"], "gc_tasks": inst["gc_tasks"],
            "bucket": {k: bucket[k] for k in ("storage_bytes", "objects", "noncurrent_bytes", "policy")}}


def test_fleet_reclaims_two_blocks_one_and_beats_sequential_runs(server, fleet_emu, keys, tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentTaskRunId, TaskRunFilter, \
        TaskRunFilterFlowRunId

    from acr_gc.flows.fleet import reclaim_fleet
    from acr_gc.flows.reclaim import reclaim_storage

    dataset = ds.fleet_dataset()
    before = fleet_emu.truth()
    for iid in (ds.FLEET_A, ds.FLEET_B, ds.FLEET_C):
        assert before["instances"][iid]["tags"] == ds.all_tags(dataset, iid)

    # ---- the fleet ---------------------------------------------------------------------
    with ds.api_settings(server.api_url):
        started = time.monotonic()
        state = reclaim_fleet(_configs(fleet_emu, tmp_path / "fleet"), slots_per_region=3, return_state=True)
        fleet_seconds = time.monotonic() - started
    after = fleet_emu.truth()
    assert state.is_completed(), f"{state.type}: {state.message}\n{server.output(3000)}"
    outcomes = {o.instance_id: o for o in state.result()}
    assert list(outcomes) == [ds.FLEET_A, ds.FLEET_B, ds.FLEET_C]  # the summary, in config order

    for iid in (ds.FLEET_A, ds.FLEET_B):
        o = outcomes[iid]
        assert (o.state, o.flow_state, o.region) == ("GC_DONE", "COMPLETED", "cn-hangzhou"), o
        assert o.tags_deleted == ds.FLEET_EXPIRED_PER_INSTANCE, o
        assert after["instances"][iid]["tags"] == ds.FLEET_RETAINED
        assert [t["state"] for t in after["instances"][iid]["gc_tasks"]] == ["SUCCESS"]
        assert after["buckets"][ds.bucket_of(iid)]["policy"] == ds.original_policy(ds.bucket_of(iid))
    blocked = outcomes[ds.FLEET_C]
    assert (blocked.state, blocked.flow_state) == ("BLOCKED", "FAILED"), blocked
    assert "apps/legacy:old" in (blocked.message or ""), blocked.message
    assert blocked.tags_deleted is None
    assert _cloud(after, ds.FLEET_C) == _cloud(before, ds.FLEET_C)  # nothing changed in C's cloud
    assert len({o.run_id for o in outcomes.values()}) == 3
    for o in outcomes.values():  # each child wrote its own run folder under its run id
        summary = ds.read_json(tmp_path / "fleet" / "out" / o.instance_id / o.run_id / "summary.json")
        assert summary["state"] == o.state

    # ---- the child flow runs on the server: 3 reclaim-storage runs under the fleet run ----
    fleet_run_id = state.state_details.flow_run_id
    with ds.api_settings(server.api_url), get_client(sync_client=True) as client:
        task_runs = client.read_task_runs(task_run_filter=TaskRunFilter(
            flow_run_id=TaskRunFilterFlowRunId(any_=[fleet_run_id])))
        instance_tasks = [t for t in task_runs if t.name.startswith("reclaim-instance")]
        # a subflow called from a task gets a parent task run of its own in the calling
        # flow run (named after the child flow): every one of them in the fleet run
        children = client.read_flow_runs(flow_run_filter=FlowRunFilter(
            parent_task_run_id=FlowRunFilterParentTaskRunId(any_=[t.id for t in task_runs])))
        flows = {f.id: f.name for f in client.read_flows()}
        limits = {lim.name: lim.limit for lim in client.read_global_concurrency_limits(limit=100, offset=0)}
    assert len(instance_tasks) == 3
    assert len(children) == 3 and {flows[c.flow_id] for c in children} == {"reclaim-storage"}
    child_states = sorted(c.state.type.value for c in children)
    assert child_states == ["COMPLETED", "COMPLETED", "FAILED"], child_states
    assert sorted(c.parameters["run_id"] for c in children) == sorted(o.run_id for o in outcomes.values())
    assert limits.get("acr-gc-region-cn-hangzhou") == 3

    # ---- the same three, one after another -------------------------------------------
    fleet_emu.reset()
    assert fleet_emu.truth()["instances"][ds.FLEET_A]["tags"] == ds.all_tags(dataset, ds.FLEET_A)
    sequential_states = []
    with ds.api_settings(server.api_url):
        started = time.monotonic()
        for config in _configs(fleet_emu, tmp_path / "sequential"):
            sequential_states.append(reclaim_storage(config, return_state=True))
        sequential_seconds = time.monotonic() - started
    assert [s.is_completed() for s in sequential_states] == [True, True, False]
    print(f"\nfleet of 3 (2 reclaimed x {ds.FLEET_EXPIRED_PER_INSTANCE} tags at {GC_TAGS_PER_SECOND} tags/s, "
          f"1 blocked): {fleet_seconds:.1f}s; three sequential reclaim_storage runs: {sequential_seconds:.1f}s "
          f"(ratio {fleet_seconds / sequential_seconds:.2f})")
