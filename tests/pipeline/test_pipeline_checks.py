"""The checks before any change: each stops the run with one clear message, the cloud
exactly as it was.

Each blocked run goes through recording proxies (ACR and OSS), so besides the emulator's
ground truth (tags, GC tasks, bucket bytes/objects/versioning/policy identical before and
after) the test sees which actions were called: reads only. The emulator's own
request_counts count requests per service, not per action, hence the proxies.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from emulator_kit import new_emulator
from pipeline_support import (
    OPS_AK,
    RecordingProxy,
    cli_env,
    cloud_state,
    config_dict,
    dataset,
    ledger_rows,
    run_cli,
    run_flow,
    summary_of,
    write_config,
)

pytestmark = pytest.mark.slow

READ_ACTIONS = {
    "GetInstance", "ListNamespace", "ListRepository", "ListRepoTag", "ListArtifactLifecycleRule",
    "ListChartNamespace", "ListChartRepository", "ListRepoSyncRule", "GetRepoSourceCodeRepo", "ListRepoBuildRule",
    "GetGarbageCollectionEnablement", "ListGarbageCollectionTask", "GetGarbageCollectionTask",
}


@pytest.fixture(scope="module")
def world():
    with new_emulator(dataset(), gc_tags_per_second=50) as emu, \
            RecordingProxy(emu.acr_endpoint, "acr") as acr, RecordingProxy(emu.oss_endpoint, "oss") as oss:
        yield {"emu": emu, "proxies": (acr, oss), "endpoints": (acr.endpoint, oss.endpoint)}


def _calls_since(world, marks):
    return [r for proxy, n in zip(world["proxies"], marks) for r in proxy.snapshot()[n:]]


def _marks(world):
    return [len(p.snapshot()) for p in world["proxies"]]


def _assert_reads_only(calls):
    assert calls, "the proxies saw nothing: the run bypassed them"
    acr_actions = {action for service, _, _, _, action in calls if service == "acr"}
    assert acr_actions <= READ_ACTIONS, acr_actions - READ_ACTIONS
    oss = {(method, query) for service, method, _, query, _ in calls if service == "oss"}
    assert {method for method, _ in oss} <= {"GET", "HEAD"}, oss


# (instance, bucket, extra config, words the one message must hold)
BLOCKED = [
    ("cri-nowl", "cri-nowl-storage", {},
     ["GC is not enabled for instance cri-nowl", "whitelist ticket"]),
    # apps/svc:s1 is expired (count 2 keeps s3, s2) and has no way back: no alias, no sync
    # rule, no source binding or build rule, and no manifest line for apps/svc.
    ("cri-gate", "cri-gate-storage", {},
     ["gate blocked: 1 expired tag(s) cannot be regenerated (apps/svc:s1)", "allow_unregenerable"]),
    ("cri-never", "cri-never-storage", {},
     ["bucket cri-never-storage", "storage will never drop", "accept_never_released"]),
]


@pytest.mark.parametrize("instance_id, bucket_name, extra, words", BLOCKED, ids=[b[0] for b in BLOCKED])
def test_check_blocks_before_any_change(world, prefect_api_url, tmp_path, monkeypatch,
                                        instance_id, bucket_name, extra, words):
    emu = world["emu"]
    emu.load(dataset())
    before = emu.truth()
    marks = _marks(world)
    config = config_dict(world["endpoints"], tmp_path, instance_id, bucket_name, **extra)

    state, folder = run_flow(config, monkeypatch)

    assert state.is_failed()
    message = state.message
    assert message.startswith("BLOCKED: ") and "\n" not in message
    for text in words:
        assert text in message, message
    summary = summary_of(folder)
    assert summary["state"] == "BLOCKED"
    assert summary["gc"]["task_id"] is None and summary["storage"]["before_bytes"] is None
    assert (folder / "plan.csv").exists() and not (folder / "deleted_tags.csv").exists()
    rows = ledger_rows(config, folder.name)
    assert rows["run"].state == "BLOCKED"
    assert rows["run"].message == message.removeprefix("BLOCKED: ")
    assert rows["freezes"] == [] and rows["gc_tasks"] == []

    after = emu.truth()
    assert cloud_state(after) == cloud_state(before)
    _assert_reads_only(_calls_since(world, marks))


def test_never_released_bucket_proceeds_when_accepted(world, prefect_api_url, tmp_path, monkeypatch):
    emu = world["emu"]
    emu.load(dataset())
    config = config_dict(world["endpoints"], tmp_path, "cri-never", "cri-never-storage",
                         policy={"accept_never_released": True})
    state, folder = run_flow(config, monkeypatch)
    assert state.is_completed(), state.message
    summary = summary_of(folder)
    assert summary["state"] == "GC_DONE"
    assert summary["storage"]["window_end"] is None  # never released: no window to wait for
    after = emu.truth()
    assert after["instances"]["cri-never"]["tags"] == {"apps/svc": ["s2", "s3"]}  # s1 expired (count 2)
    assert after["buckets"]["cri-never-storage"]["policy"] is None


def test_gate_blocked_through_the_cli_exits_3(world, prefect_api_url, tmp_path):
    emu = world["emu"]
    emu.load(dataset())
    before = emu.truth()
    marks = _marks(world)
    path = write_config(config_dict(world["endpoints"], tmp_path, "cri-gate", "cri-gate-storage"),
                        tmp_path / "gate.yaml")
    result = run_cli(["run", "--config", str(path)], cli_env(prefect_api_url))
    assert result.returncode == 3, (result.stdout, result.stderr)
    lines = result.stdout.strip().splitlines()
    folder = Path(lines[-1])
    assert folder.parent == tmp_path / "out" / "cri-gate"
    assert lines[0].startswith("state: BLOCKED") and "gate blocked: 1 expired tag(s)" in lines[0], lines[0]
    assert summary_of(folder)["state"] == "BLOCKED"
    assert cloud_state(emu.truth()) == cloud_state(before)
    _assert_reads_only(_calls_since(world, marks))


# bad input through `acr-gc run`: exit 2, ONE line on stderr, no run folder
BAD_INPUT = [
    ("unknown-instance", {"target": {"instance_id": "cri-nope"}}, OPS_AK, "pipeline-ops-secret",
     ["instance cri-nope not found", "target.instance_id"]),
    ("wrong-credentials", {}, OPS_AK, "not-the-secret", ["credentials rejected", "target.credentials"]),
]


@pytest.mark.parametrize("case, change, ak, secret, words", BAD_INPUT, ids=[b[0] for b in BAD_INPUT])
def test_bad_input_through_the_cli_exits_2(world, prefect_api_url, tmp_path, case, change, ak, secret, words):
    emu = world["emu"]
    emu.load(dataset())
    before = emu.truth()
    marks = _marks(world)
    config = config_dict(world["endpoints"], tmp_path, "cri-run", "cri-run-storage")
    for section, values in change.items():
        config[section].update(values)
    path = write_config(config, tmp_path / f"{case}.yaml")

    result = run_cli(["run", "--config", str(path)], cli_env(prefect_api_url, ak, secret))

    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("acr-gc: ")
    for text in words:
        assert text in lines[0], lines[0]
    assert secret not in result.stderr and result.stdout == ""
    assert not (tmp_path / "out").exists()
    assert cloud_state(emu.truth()) == cloud_state(before)
    _assert_reads_only(_calls_since(world, marks))
    assert json.dumps(before["instances"]["cri-run"]["gc_tasks"]) == "[]"


def test_statistics_too_late_for_the_baseline_block_before_any_change(world, prefect_api_url, tmp_path, monkeypatch):
    """Issue 12 item 7: GetBucketStat's figures 30 h behind, sampling.stat_wait_max 1 h: the
    baseline cannot cover the run, so the run stops BLOCKED, reads only, nothing changed."""
    emu = world["emu"]
    emu.load(dataset())
    emu.set_faults(stat_delay_hours=30)
    try:
        before = emu.truth()
        marks = _marks(world)
        config = config_dict(world["endpoints"], tmp_path, "cri-run", "cri-run-storage",
                             sampling={"stat_wait_max": "PT1H"})
        state, folder = run_flow(config, monkeypatch)
        after = emu.truth()
    finally:
        emu.set_faults(stat_delay_hours=0)

    assert state.is_failed()
    message = state.message
    assert message.startswith("BLOCKED: bucket cri-run-storage: GetBucketStat's figures are from "), message
    assert "\n" not in message and "sampling.stat_wait_max" in message and "nothing was changed" in message
    summary = summary_of(folder)
    assert summary["state"] == "BLOCKED" and summary["gc"]["task_id"] is None
    rows = ledger_rows(config, folder.name)
    assert rows["freezes"] == [] and rows["gc_tasks"] == []
    assert cloud_state(after) == cloud_state(before)
    _assert_reads_only(_calls_since(world, marks))
