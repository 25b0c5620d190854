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
