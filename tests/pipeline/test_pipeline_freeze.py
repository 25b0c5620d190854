"""The freeze as real OSS enforces it, owned by one construct (issue 12 items 2-5).

* ``freeze.principals`` "*" or the registry's role: exit 2 before any request.
* GC that may still run keeps the bucket frozen when the run ends (watch timeout with
  ``leave``, a cancel the emulator never answered); ``acr-gc sample`` / ``acr-gc thaw``
  thaw once the task is seen ended, and the policy is JSON-equal to the original.
* An ``AcrGcFreeze…`` statement no run owns stops ``acr-gc run`` (exit 3, nothing
  changed); ``acr-gc thaw`` from another working folder removes it (the SQLite ledger
  path is relative to the config file).
* A policy edited while frozen: thaw keeps the edit, summary.json says "partial".

Real parts only: the emulator as a subprocess (GC at 2 tags per real second, so cri-frz's
30 expired tags take ~15 s), the real SDKs, the flow on the session's Prefect server (in
this process, or the CLI as a subprocess).
"""

from __future__ import annotations

import copy
import json
import subprocess
import time
from pathlib import Path

import pytest

from emulator_kit import new_emulator
from pipeline_support import (
    OPS_AK,
    OPS_SECRET,
    OTHER_POLICY,
    RUN_RETAINED,
    WRITER_PRINCIPAL,
    cli_args,
    cli_env,
    cloud_state,
    config_dict,
    dataset,
    ledger_rows,
    oss_sdk,
    run_cli,
    run_flow,
    summary_of,
    write_config,
)

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
# cri-frz-storage's own policy in these tests: one statement that is not ours
FRZ_POLICY = {"Version": "1", "Statement": [
    {"Sid": "allow-ci-read", "Effect": "Allow", "Principal": ["uid-ci-3003"], "Action": ["oss:GetObject"],
     "Resource": ["acs:oss:*:*:cri-frz-storage/*"]}]}
REGISTRY_ROLE = "acs:ram::uid-ops-1001:role/AliyunContainerRegistryCustomizedOSSBucketRole"


@pytest.fixture(scope="module")
def emu_process():
    with new_emulator(dataset(), gc_tags_per_second=2) as process:
        yield process


@pytest.fixture
def emu(emu_process):
    yield emu_process
    emu_process.reset()  # start dataset and fault settings back (a hold is released)


def frz_dataset() -> dict:
    data = dataset()
    next(b for b in data["buckets"] if b["name"] == "cri-frz-storage")["policy"] = copy.deepcopy(FRZ_POLICY)
    return data


def policy_of(emu, bucket: str):
    return emu.truth()["buckets"][bucket]["policy"]


def freeze_sids(policy) -> list[str]:
    return [s.get("Sid") for s in (policy or {}).get("Statement", []) if str(s.get("Sid", "")).startswith("AcrGcFreeze")]


def frz_task(emu) -> dict:
    [task] = emu.truth()["instances"]["cri-frz"]["gc_tasks"]
    return task


def wait_task_ended(emu, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while frz_task(emu)["state"] not in ("SUCCESS", "FAILED", "CANCELED"):
        assert time.monotonic() < deadline, frz_task(emu)
        time.sleep(0.2)
    return frz_task(emu)


def same_json(a, b) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


# ---- item 2: explicit principals -----------------------------------------------------------------


@pytest.mark.parametrize("principals, why", [(["*"], "registry's own RAM role"),
                                             ([WRITER_PRINCIPAL, REGISTRY_ROLE], "registry's own service role")],
                         ids=["star", "registry-role"])
def test_star_or_the_registry_role_is_refused_before_any_request(emu, tmp_path, principals, why):
    config = config_dict((emu.acr_endpoint, emu.oss_endpoint), tmp_path, "cri-run", "cri-run-storage",
                         freeze={"principals": principals})
    path = write_config(config, tmp_path / "config.yaml")
    before = emu.truth()["request_counts"]
    result = run_cli(["run", "--config", str(path)], cli_env(None))
    assert result.returncode == 2, (result.stdout, result.stderr)
    [line] = result.stderr.splitlines()
    assert line.startswith(f"acr-gc: config {path}: freeze.principals: ") and why in line, line
    assert emu.truth()["request_counts"] == before  # not one request
    assert not (tmp_path / "out").exists()


# ---- item 3: never thaw while GC may run ------------------------------------------------------


def test_leave_after_timeout_keeps_the_bucket_frozen_until_sample_sees_gc_ended(emu, prefect_api_url, tmp_path,
                                                                               monkeypatch):
    from acr_gc.config import Config
    from acr_gc.ledger import Ledger
    from acr_gc.tasks.freeze import settle_freeze
    from acr_gc.cloud.clients import CloudClients

    emu.load(frz_dataset())
    config = config_dict((emu.acr_endpoint, emu.oss_endpoint), tmp_path, "cri-frz", "cri-frz-storage",
                         gc={"timeout": "PT2S", "poll_interval": 0.3, "on_timeout": "leave"})
    state, folder = run_flow(config, monkeypatch)

    assert state.is_failed(), state
    assert frz_task(emu)["state"] == "RUNNING"
    assert len(freeze_sids(policy_of(emu, "cri-frz-storage"))) == 1  # still frozen: GC runs on
    summary = summary_of(folder)
    assert summary["state"] == "FAILED" and summary["gc"]["state"] == "RUNNING"
    assert summary["checks"]["freeze_restored"] is False
    message = ledger_rows(config, folder.name)["run"].message
    assert "stays frozen" in message and "acr-gc sample" in message, message

    ledger = Ledger(config["ledger"]["url"])
    try:  # what `acr-gc sample` does first, while the task still runs: nothing
        parsed = Config.model_validate(config)
        said = settle_freeze(parsed, ledger, CloudClients.from_config(parsed))
    finally:
        ledger.dispose()
    if frz_task(emu)["state"] == "RUNNING":
        assert "stays frozen" in said, said
        assert freeze_sids(policy_of(emu, "cri-frz-storage"))

    wait_task_ended(emu)
    path = write_config(config, tmp_path / "config.yaml")
    result = run_cli(["sample", "--config", str(path)], cli_env(prefect_api_url))
    assert result.returncode == 0, (result.stdout, result.stderr)
    assert same_json(policy_of(emu, "cri-frz-storage"), FRZ_POLICY)
    assert [f.status for f in ledger_rows(config, folder.name)["freezes"]] == ["restored"]


def test_an_unconfirmed_cancel_keeps_the_bucket_frozen_until_thaw_sees_gc_ended(emu, prefect_api_url, tmp_path,
                                                                               monkeypatch):
    emu.load(frz_dataset())
    emu.set_faults(hold={"action": "CancelGarbageCollectionTask", "skip": 0})  # the cancel is never answered
    config = config_dict((emu.acr_endpoint, emu.oss_endpoint), tmp_path, "cri-frz", "cri-frz-storage",
                         gc={"timeout": "PT2S", "poll_interval": 0.3, "on_timeout": "cancel"},
                         api={"retries": 0, "timeout_s": 1})
    state, folder = run_flow(config, monkeypatch)

    assert state.is_failed(), state
    assert frz_task(emu)["state"] == "RUNNING"
    assert len(freeze_sids(policy_of(emu, "cri-frz-storage"))) == 1
    assert summary_of(folder)["checks"]["freeze_restored"] is False

    path = write_config(config, tmp_path / "config.yaml")
    env = cli_env(prefect_api_url)
    early = run_cli(["thaw", "--config", str(path)], env)
    if frz_task(emu)["state"] == "RUNNING":  # (it was, unless this machine took ~10 s to start the CLI)
        assert early.returncode == 3, (early.stdout, early.stderr)
        assert "GC task" in early.stderr and "RUNNING" in early.stderr, early.stderr
        assert freeze_sids(policy_of(emu, "cri-frz-storage"))

    wait_task_ended(emu)
    result = run_cli(["thaw", "--config", str(path)], env)
    assert result.returncode == 0, (result.stdout, result.stderr)
    assert same_json(policy_of(emu, "cri-frz-storage"), FRZ_POLICY)
    assert [f.status for f in ledger_rows(config, folder.name)["freezes"]] == ["restored"]


# ---- item 4: the bucket is the truth -----------------------------------------------------------


def test_a_stray_freeze_statement_stops_the_run_and_thaw_from_another_folder_removes_it(emu, prefect_api_url,
                                                                                       tmp_path):
    stray = {"Sid": "AcrGcFreeze20261001T000000Zlost01", "Effect": "Deny", "Principal": [WRITER_PRINCIPAL],
             "Action": ["oss:PutObject", "oss:DeleteObject"], "Resource": ["acs:oss:*:*:cri-run-storage/*"]}
    frozen = {**OTHER_POLICY, "Statement": OTHER_POLICY["Statement"] + [stray]}
    emu.load(dataset(run_policy=frozen))
    folder = tmp_path / "ops"
    folder.mkdir()
    config = config_dict((emu.acr_endpoint, emu.oss_endpoint), folder, "cri-run", "cri-run-storage",
                         ledger={"url": "sqlite:///state/ledger.db"})  # relative: to the config's folder
    path = write_config(config, folder / "config.yaml")
    env = cli_env(prefect_api_url)
    before = cloud_state(emu.truth())

    result = run_cli(["run", "--config", str(path)], env)
    assert result.returncode == 3, (result.stdout, result.stderr)
    assert stray["Sid"] in result.stdout and "acr-gc thaw --config" in result.stdout, result.stdout
    assert cloud_state(emu.truth()) == before  # nothing changed
    assert (folder / "state" / "ledger.db").exists() and not (ROOT / "state").exists()

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    thaw = subprocess.run(cli_args("thaw", "--config", str(path)), env=env, cwd=elsewhere, capture_output=True,
                          text=True, timeout=180)
    assert thaw.returncode == 0, (thaw.stdout, thaw.stderr)
    assert stray["Sid"] in thaw.stdout, thaw.stdout
    assert same_json(policy_of(emu, "cri-run-storage"), OTHER_POLICY)
    assert not (elsewhere / "state").exists()


# ---- item 5: a partial restore is told ----------------------------------------------------------


def test_a_policy_edited_while_frozen_keeps_the_edit_and_the_summary_says_partial(emu, prefect_api_url, tmp_path):
    emu.load(dataset(run_policy=OTHER_POLICY))
    config = config_dict((emu.acr_endpoint, emu.oss_endpoint), tmp_path, "cri-run", "cri-run-storage",
                         gc={"poll_interval": 0.3})
    path = write_config(config, tmp_path / "config.yaml")
    edit = {"Sid": "security-team", "Effect": "Deny", "Principal": ["uid-intern-4004"],
            "Action": ["oss:GetObject"], "Resource": ["acs:oss:*:*:cri-run-storage/secret/*"]}
    proc = subprocess.Popen(cli_args("run", "--config", str(path)), env=cli_env(prefect_api_url), cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        frozen = None
        while time.monotonic() < deadline and proc.poll() is None:
            policy = policy_of(emu, "cri-run-storage")
            tasks = emu.truth()["instances"]["cri-run"]["gc_tasks"]
            if freeze_sids(policy) and tasks and tasks[0]["state"] == "RUNNING":
                frozen = policy
                break
            time.sleep(0.05)
        assert frozen is not None, f"never frozen with GC running: {proc.communicate(timeout=60)}"
        # someone (the bucket owner) edits the policy while it is frozen
        owner = oss_sdk(emu.oss_endpoint, OPS_AK, OPS_SECRET)
        edited = {**frozen, "Statement": frozen["Statement"] + [edit]}
        from alibabacloud_tea_openapi.models import OpenApiRequest, Params
        from alibabacloud_tea_util.models import RuntimeOptions

        owner.execute(Params(action="PutBucketPolicy", pathname="/?policy", method="PUT", style="ROA",
                             body_type="none", auth_type="AK", req_body_type="json", version="2019-05-17",
                             protocol="HTTP"),
                      OpenApiRequest(host_map={"bucket": "cri-run-storage"}, body=json.dumps(edited)),
                      RuntimeOptions(autoretry=False))
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, (out, err)
    assert emu.truth()["instances"]["cri-run"]["tags"] == RUN_RETAINED
    # ours is gone, theirs and the edit are kept
    assert same_json(policy_of(emu, "cri-run-storage"), {**OTHER_POLICY,
                                                         "Statement": OTHER_POLICY["Statement"] + [edit]})
    run_folder = Path(out.strip().splitlines()[-1])
    summary = summary_of(run_folder)
    assert summary["state"] == "GC_DONE"
    assert summary["checks"]["freeze_restored"] == "partial"
    assert [f.status for f in ledger_rows(config, run_folder.name)["freezes"]] == ["restored_partial"]
    assert "only the acr-gc freeze statement was removed" in (run_folder / "report.html").read_text(encoding="utf-8")


def test_window_end_hold_stays_frozen_after_gc_until_the_sampler_closes_the_window(emu, prefect_api_url, tmp_path,
                                                                                   monkeypatch):
    """freeze.hold_until window_end, scheduled sampling: the run ends GC_DONE with the bucket
    still frozen; the daily sampler's pass after the window's end completes the run and thaws."""
    from acr_gc.config import Config
    from acr_gc.flows.sample import sample_storage

    emu.load(dataset(run_policy=OTHER_POLICY))
    config = config_dict((emu.acr_endpoint, emu.oss_endpoint), tmp_path, "cri-run", "cri-run-storage",
                         freeze={"hold_until": "window_end"}, gc={"poll_interval": 0.3})
    state, folder = run_flow(config, monkeypatch)
    assert state.is_completed(), state.message
    assert summary_of(folder)["state"] == "GC_DONE"
    assert len(freeze_sids(policy_of(emu, "cri-run-storage"))) == 1  # held to the window's end

    sample_storage(Config.model_validate(config))  # inside the window: sampled, still frozen
    assert len(freeze_sids(policy_of(emu, "cri-run-storage"))) == 1
    emu.advance_clock(6)  # noncurrent_days 3 + margin 2: the window has closed
    sample_storage(Config.model_validate(config))
    assert summary_of(folder)["state"] == "COMPLETE"
    assert same_json(policy_of(emu, "cri-run-storage"), OTHER_POLICY)
    assert [f.status for f in ledger_rows(config, folder.name)["freezes"]] == ["restored"]
