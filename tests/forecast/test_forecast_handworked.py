"""The exact forecast on the hand-worked dataset (``forecast_support``): figures worked out by
hand, then checked again against what the emulator's GC actually removes from the bucket."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import forecast_support as fs  # noqa: E402
from forecast_support import adapters, blob_frame, make_config, planned_tags  # noqa: E402

from acr_gc.cloud import calls  # noqa: E402
from acr_gc.ledger.store import Ledger  # noqa: E402
from acr_gc.rules.forecast import forecast, forecast_range, unreferenced_before  # noqa: E402
from acr_gc.tasks.forecast import read_graph  # noqa: E402
from emulator_kit import call_gc_action, make_acr_client  # noqa: E402

LINK_BYTES = len(fs.d("x"))  # a tag's link object holds its digest


@pytest.fixture
def handworked(emulator, tmp_path):
    emulator.load(fs.handworked_dataset())
    calls.reset_limiters()
    config = make_config(emulator, tmp_path)
    acr, oss, registry = adapters(config)
    yield emulator, config, acr, oss, registry
    registry.close()


def test_forecast_equals_the_handworked_figures(handworked):
    emulator, config, acr, oss, registry = handworked
    planned = planned_tags(acr)
    expired = {(r.namespace, r.repo, r.tag) for r in planned[planned["expired"]].itertuples()}
    assert expired == fs.EXPIRED  # the hand-worked reading of the rule

    graph = read_graph(registry, planned, Ledger(config.ledger.url))
    assert graph.unreadable == {}
    result = forecast(planned, graph.manifests, planned["expired"].to_numpy())
    assert result.bytes == fs.FREED
    assert result.is_upper_bound is False and result.unreadable == ()
    by_ns = dict(zip(result.by_namespace["namespace"], result.by_namespace["bytes"]))
    assert by_ns == fs.FREED_BY_NAMESPACE and sum(by_ns.values()) == result.bytes
    # the same figure for the deleted set given as keys, and as the low end of a range
    assert forecast(planned, graph.manifests, fs.EXPIRED).bytes == fs.FREED
    low, high = forecast_range(planned, graph.manifests, fs.EXPIRED, {("app", "web", "w2")})
    # deleting w2 too frees MW2's own blobs (mirror/web:old is expired as well): 1024 + 2_000 + 20_000
    assert (low.bytes, high.bytes) == (fs.FREED, fs.FREED + 1024 + 2_000 + 20_000)

    unreferenced, upper = unreferenced_before(blob_frame(oss), planned, graph.manifests)
    assert (unreferenced, upper) == (fs.UNREFERENCED_BEFORE, False)


@pytest.mark.parametrize("delete_untagged", [False, True], ids=["rule", "rule-deleting-untagged"])
def test_gc_removes_exactly_the_forecast_plus_what_was_already_unreferenced(handworked, delete_untagged):
    """The emulator's own GC (its reading of the rules, its sweep) against the forecast.

    With ``EnableDeleteUntaggedManifest`` on the rule (issue 11) the untagged MU and its own
    blobs are freed too -- counted once, in the already-unreferenced bytes (89_601 by hand),
    not again in the planned saving (48_596): the figures are the same either way."""
    emulator, config, acr, oss, registry = handworked
    if delete_untagged:
        data = fs.handworked_dataset()
        data["instances"][0]["lifecycle_rules"][0]["enable_delete_untagged_manifest"] = True
        emulator.load(data)
    planned = planned_tags(acr)
    graph = read_graph(registry, planned, Ledger(config.ledger.url))
    freed = forecast(planned, graph.manifests, planned["expired"].to_numpy()).bytes
    unreferenced, _ = unreferenced_before(blob_frame(oss), planned, graph.manifests)
    assert (freed, unreferenced) == (fs.FREED, fs.UNREFERENCED_BEFORE)
    before = emulator.truth()["buckets"][fs.BUCKET]["live_bytes"]

    client = make_acr_client(emulator.acr_endpoint)
    task_id = call_gc_action(client, "CreateGarbageCollectionTask", InstanceId=fs.INSTANCE)["TaskId"]
    deadline = time.monotonic() + 60
    while True:
        state = call_gc_action(client, "GetGarbageCollectionTask", InstanceId=fs.INSTANCE, TaskId=task_id)["State"]
        if state not in ("PENDING", "RUNNING") or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert state == "SUCCESS"
    after = emulator.truth()["buckets"][fs.BUCKET]["live_bytes"]
    links = LINK_BYTES * len(fs.EXPIRED)
    assert before - after == freed + unreferenced + links


def test_an_unreadable_manifest_is_counted_by_image_size_and_named(handworked, tmp_path):
    """MW1's manifest object deleted between the tag listing and the fetch: the registry answers 404."""
    from acr_gc.emulator.registry import blob_key  # the emulator's documented layout
    from acr_gc.reports.files import write_unreadable_manifests

    emulator, config, acr, oss, registry = handworked
    planned = planned_tags(acr)
    oss.delete_object(blob_key(fs.d("MW1")))
    graph = read_graph(registry, planned, Ledger(config.ledger.url))
    assert set(graph.unreadable) == {fs.d("MW1")}
    result = forecast(planned, graph.manifests, planned["expired"].to_numpy())
    assert result.unreadable == (fs.d("MW1"),) and result.is_upper_bound is True
    image_size = fs.SIZES["CW1"] + fs.SIZES["BASE"] + fs.SIZES["W1"]  # ListRepoTag's ImageSize of w1
    assert result.bytes == fs.FREED - (1024 + 1_000 + 10_000) + image_size
    path = write_unreadable_manifests(planned, result.unreadable, tmp_path)
    assert path.read_text().splitlines()[1].startswith("app,web,w1,")
    # the unreadable digest is not cached: the next run asks for it again
    assert fs.d("MW1") not in read_graph(registry, planned, Ledger(config.ledger.url)).manifests
