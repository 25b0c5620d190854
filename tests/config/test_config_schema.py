"""The flow's parameter schema (what the Prefect server validates deployment parameters
against, and what the UI form is built from) admits what the config file admits."""

import jsonschema
import pytest
from prefect.utilities.callables import parameter_schema

from acr_gc.flows.reclaim import reclaim_storage


@pytest.fixture(scope="module")
def schema() -> dict:
    return parameter_schema(reclaim_storage.fn).model_dump_for_openapi()


@pytest.mark.parametrize("timeout", ["PT6H", 30, 0.5])
def test_durations_as_iso_8601_or_seconds(schema, timeout):
    parameters = {"config": {"target": {"instance_id": "cri-x", "bucket": "b"}, "freeze": {"principals": ["ci"]},
                             "gc": {"timeout": timeout}, "sampling": {"day_length": timeout}}}
    jsonschema.validate(parameters, schema)


@pytest.mark.parametrize("bad", [{"gc": {"timeout": -1}}, {"gc": {"timeout": [1]}}, {"unknown": 1}])
def test_bad_values_are_refused_by_the_schema(schema, bad):
    parameters = {"config": {"target": {"instance_id": "cri-x", "bucket": "b"}, "freeze": {"principals": ["ci"]},
                             **bad}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(parameters, schema)
