"""The fleet's parameter: each instance once, each bucket once (issue 14 item 6).

Two configs with one bucket would freeze and thaw that bucket under each other; the
fleet flow run is refused by Prefect's parameter validation, before its body (no child
run, no cloud call: the endpoints below answer nothing), with one line naming both
instances. Real parts: the flow on the session's Prefect server.
"""

from __future__ import annotations

import pytest
from pydantic import TypeAdapter, ValidationError

from acr_gc.config import Config
from acr_gc.input_errors import first_problem


def _config(instance_id: str, bucket: str) -> Config:
    return Config.model_validate({
        "target": {"instance_id": instance_id, "bucket": bucket, "acr_endpoint": "127.0.0.1:9",
                   "oss_endpoint": "127.0.0.1:9"},
        "freeze": {"principals": ["acs:ram::1234567890:user/ci-pusher"]},
    })


@pytest.mark.parametrize(("configs", "line"), [
    ([("cri-a", "shared-bucket"), ("cri-b", "other-bucket"), ("cri-c", "shared-bucket")],
     "configs[0] (instance cri-a) and configs[2] (instance cri-c) name the same bucket shared-bucket"),
    ([("cri-a", "bucket-a"), ("cri-a", "bucket-b")],
     "configs[0] (instance cri-a) and configs[1] (instance cri-a) name the same instance cri-a"),
])
def test_the_fleet_parameter_refuses_a_bucket_or_instance_named_twice(configs, line):
    from acr_gc.flows.fleet import FleetConfigs

    with pytest.raises(ValidationError) as refused:
        TypeAdapter(FleetConfigs).validate_python([_config(*c) for c in configs])
    assert line in first_problem(refused.value)
    TypeAdapter(FleetConfigs).validate_python([_config("cri-a", "bucket-a"), _config("cri-b", "bucket-b")])


def test_a_fleet_run_with_one_bucket_twice_fails_before_any_child_run(prefect_api_url):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId

    from acr_gc.flows.fleet import reclaim_fleet

    state = reclaim_fleet([_config("cri-a", "shared-bucket"), _config("cri-b", "shared-bucket")], return_state=True)
    assert state.is_failed(), state
    assert ("configs[0] (instance cri-a) and configs[1] (instance cri-b) name the same bucket shared-bucket"
            in state.message), state.message
    with get_client(sync_client=True) as client:
        fleet_run = client.read_flow_run(state.state_details.flow_run_id)
        children = client.read_flow_runs(flow_run_filter=FlowRunFilter(
            parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[fleet_run.id])))
    assert children == []


def _write(tmp_path, name: str, instance_id: str, bucket: str, emulator=None) -> str:
    import yaml

    endpoint = (emulator.acr_endpoint, emulator.oss_endpoint) if emulator else ("127.0.0.1:9", "127.0.0.1:9")
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({
        "target": {"instance_id": instance_id, "bucket": bucket, "acr_endpoint": endpoint[0],
                   "oss_endpoint": endpoint[1]},
        "freeze": {"principals": ["acs:ram::1234567890:user/ci-pusher"]},
        "report": {"out_dir": str(tmp_path / "out")},
        "ledger": {"url": f"sqlite:///{tmp_path / 'ledger.db'}"},
    }), encoding="utf-8")
    return str(path)


@pytest.mark.slow
def test_acr_gc_fleet_with_one_bucket_twice_exits_2_naming_both_instances(tmp_path):
    from pipeline.pipeline_support import cli_env, run_cli

    configs = [_write(tmp_path, "a", "cri-a", "shared-bucket"), _write(tmp_path, "b", "cri-b", "shared-bucket")]
    done = run_cli(["fleet", "--config", configs[0], "--config", configs[1]], cli_env(None))
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stderr.strip().splitlines() == [
        "acr-gc: fleet: configs[0] (instance cri-a) and configs[1] (instance cri-b) name the same bucket "
        "shared-bucket: a fleet may list each bucket once (their runs would freeze and thaw one bucket under each "
        "other)"], done.stderr
    assert not (tmp_path / "out").exists()  # no run folder: refused before any run


@pytest.mark.slow
def test_acr_gc_fleet_runs_each_instance_and_exits_3_when_one_was_blocked(emulator, prefect_api_url, tmp_path):
    from pipeline.pipeline_support import FRZ_RETAINED, cli_env, config_dict, dataset, run_cli, write_config

    emulator.load(dataset())
    endpoints = (emulator.acr_endpoint, emulator.oss_endpoint)
    paths = [str(write_config(config_dict(endpoints, tmp_path, iid, bucket), tmp_path / f"{iid}.yaml"))
             for iid, bucket in (("cri-frz", "cri-frz-storage"), ("cri-nowl", "cri-nowl-storage"))]
    done = run_cli(["fleet", "--config", paths[0], "--config", paths[1]], cli_env(prefect_api_url), timeout=300)
    assert done.returncode == 3, (done.stdout, done.stderr)
    lines = done.stdout.strip().splitlines()
    assert "cri-frz: GC_DONE" in lines, done.stdout
    assert any(line.startswith("cri-nowl: BLOCKED: GC is not enabled for instance cri-nowl") for line in lines), \
        done.stdout
    truth = emulator.truth()
    assert truth["instances"]["cri-frz"]["tags"] == FRZ_RETAINED
    assert truth["instances"]["cri-nowl"]["gc_tasks"] == []
