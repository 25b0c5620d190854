"""The ``console`` GC driver in real flow runs on a real Prefect server (``prefect_test_harness``),
against the real emulator through the real ACR SDK. No mocks: the test plays the operator.

The flow runs in a background thread (a copy of the test's context, so it talks to the
harness server); the test watches the flow run through ``get_client()`` until it is PAUSED
with the expected pause key, reads the instructions artifact, does what a person would
(``gc_create`` on the emulator = clicking Execute → Confirm in the console) and resumes it with
``prefect.flow_runs.resume_flow_run(flow_run_id, run_input={...})``.

Dataset, worked by hand (instance ``cri-console-a`` in ``cn-shanghai``; tags one day apart):

  team/web     w00 … w11 (w11 newest)   NAMESPACE team: keep 3 newest → expired w00 … w08 (9)
  team/api     a0 a1 a2                 NAMESPACE team: keep 3        → nothing expired
  infra/proxy  stable (oldest), e00 … e14   REPO infra/proxy: keep /stable/ → expired e00 … e14 (15)
  infra/tools  t1                        no rule applies              → kept

  planned expired tags = 9 + 15 = 24; at the emulator's 20 tags/s the task runs ≈ 1.2 s
  (the monitoring test holds it part-way with the emulator's ``gc_tags_per_second`` fault
  until the flow has seen it there, whatever the machine's speed).
"""

from __future__ import annotations

import hashlib
import re
import time
from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest

from acr_gc.cloud import credentials as cloud_credentials
from acr_gc.cloud.clients import acr_client
from acr_gc.config import Api, Config, Freeze, Gc, Target
from acr_gc.gc import TERMINAL_STATES, make_driver
from acr_gc.gc.console import (
    FINISHED_PAUSE_KEY,
    PLANNED_COLUMNS,
    START_PAUSE_KEY,
    WHITELIST_PAUSE_KEY,
    ConsoleGcDriver,
    ConsoleGcError,
    GcNotStarted,
    whitelist_variable_name,
)
from acr_gc.reports.artifacts import artifact_key
from flow_thread_kit import FlowInThread

INSTANCE = "cri-console-a"
OTHER = "cri-console-b"
REGION = "cn-shanghai"
BUCKET = "console-a-storage"

WEB_EXPIRED = [f"w{i:02d}" for i in range(9)]
PROXY_EXPIRED = [f"e{i:02d}" for i in range(15)]
PLANNED_BY_HAND = [("team", "web", t) for t in WEB_EXPIRED] + [("infra", "proxy", t) for t in PROXY_EXPIRED]
ALL_TAGS = {
    "team/web": [f"w{i:02d}" for i in range(12)],
    "team/api": ["a0", "a1", "a2"],
    "infra/proxy": ["stable"] + PROXY_EXPIRED,
    "infra/tools": ["t1"],
}


# --------------------------------------------------------------------------- dataset


def _hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def instance(instance_id: str, bucket: str) -> dict:
    start = datetime(2024, 1, 1, tzinfo=timezone.utc)
    repos = []
    for full, names in ALL_TAGS.items():
        ns, name = full.split("/")
        tags = [{"tag": t, "digest": f"sha256:{_hex(f'{full}:{t}')}",
                 "updated": (start + timedelta(days=i)).isoformat(), "layers": [f"sha256:{_hex('layer:' + t)}"]}
                for i, t in enumerate(names)]
        repos.append({"namespace": ns, "name": name, "tags": tags})
    return {
        "instance_id": instance_id, "name": instance_id, "region": REGION, "gc_whitelisted": True,
        "bucket": bucket, "namespaces": ["team", "infra"], "repositories": repos,
        "lifecycle_rules": [
            {"scope": "NAMESPACE", "namespace": "team", "retention_tag_count": 3},
            {"scope": "REPO", "namespace": "infra", "repo": "proxy", "tag_regexp": "stable"},
        ],
    }


def dataset(credentials: list[dict]) -> dict:
    layers = {f"sha256:{_hex('layer:' + t)}": 1000 for names in ALL_TAGS.values() for t in names}
    return {
        "clock": "2024-06-01T00:00:00Z",
        "credentials": credentials,
        "layers": layers,
        "instances": [instance(INSTANCE, BUCKET), instance(OTHER, "console-b-storage")],
        "buckets": [{"name": BUCKET}, {"name": "console-b-storage"}],
    }


def config(emu, instance_id: str = INSTANCE, timeout: float = 60) -> Config:
    return Config(
        target=Target(region=REGION, instance_id=instance_id, bucket=BUCKET, acr_endpoint=emu.acr_endpoint,
                      oss_endpoint=emu.oss_endpoint),
        freeze=Freeze(principals=["ops-writer"]),
        gc=Gc(driver="console", poll_interval=0.1, timeout=timeout),
        api=Api(qps=1000, retries=2, timeout_s=10),
    )


def planned_frame(cfg: Config) -> pd.DataFrame:
    """The hand-worked plan, with repo ids read through the public API (as the planner would)."""
    repos = {r.full_name: r.repo_id for r in acr_client(cfg).list_repositories()}
    return pd.DataFrame([{"namespace": ns, "repo": repo, "repo_id": repos[f"{ns}/{repo}"], "tag": tag}
                         for ns, repo, tag in PLANNED_BY_HAND], columns=list(PLANNED_COLUMNS))


# --------------------------------------------------------------------------- Prefect: a server and the flows


@pytest.fixture(scope="module")
def prefect_server(prefect_api_url):
    """The session's Prefect server (tests/conftest.py)."""
    yield prefect_api_url


@pytest.fixture
def loaded(prefect_server, emulator, credentials, monkeypatch):
    """Emulator loaded with the dataset; the default credential chain gets the dataset's key
    from the environment (the chain is cached per process, so it is rebuilt here)."""
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", credentials[0]["access_key_id"])
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", credentials[0]["access_key_secret"])
    monkeypatch.setattr(cloud_credentials, "_chain", None)
    emulator.load(dataset(credentials))
    return emulator


WATCHING: list = []  # every status the running drive flow has seen so far (same process: the test reads it meanwhile)


def _flows():
    from prefect import flow

    @flow(name="console-gc-drive", persist_result=False)
    def drive(config: Config, planned: list[dict]) -> dict:
        """What the pipeline does with a GC driver: enabled? start, then poll until done."""
        driver = make_driver(config, acr_client(config), pd.DataFrame(planned, columns=list(PLANNED_COLUMNS)))
        assert isinstance(driver, ConsoleGcDriver)
        if not driver.is_enabled():
            return {"enabled": False}
        status = driver.start()
        WATCHING[:] = [status]
        deadline = time.monotonic() + config.gc.timeout.total_seconds()
        while status.state not in TERMINAL_STATES and time.monotonic() < deadline:
            time.sleep(config.gc.poll_interval.total_seconds())
            status = driver.status(status.task_id)
            WATCHING.append(status)
        return {"enabled": True, "final": status, "seen": list(WATCHING), "active_after": driver.active_task()}

    @flow(name="console-gc-start-only", persist_result=False)
    def start_only(config: Config, planned: list[dict]):
        return make_driver(config, acr_client(config), pd.DataFrame(planned, columns=list(PLANNED_COLUMNS))).start()

    @flow(name="console-gc-cancel-only", persist_result=False)
    def cancel_only(config: Config, planned: list[dict], task_id: str):
        return make_driver(config, acr_client(config), pd.DataFrame(planned, columns=list(PLANNED_COLUMNS))).cancel(task_id)

    return drive, start_only, cancel_only


DRIVE, START_ONLY, CANCEL_ONLY = _flows()


def _gc_task(emu) -> dict:
    [task] = emu.truth()["instances"][INSTANCE]["gc_tasks"]
    return task


def _wait_until(what: str, predicate, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(0.05)


def run_name(tag: str) -> str:
    return f"console-test-{tag}-{time.time_ns()}"


def artifacts(flow_run_id, key: str) -> list:
    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        return client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]), key=ArtifactFilterKey(any_=[key])))


def run_logs(flow_run_id) -> list[str]:
    from prefect import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    with get_client(sync_client=True) as client:
        return [entry.message for entry in client.read_logs(
            log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))]


def variable(name: str):
    from prefect import get_client

    with get_client(sync_client=True) as client:
        return client.read_variable_by_name(name)


def tags_left(emu, instance_id: str = INSTANCE) -> dict[str, list[str]]:
    return emu.truth()["instances"][instance_id]["tags"]


def expected_left() -> dict[str, list[str]]:
    planned = {f"{ns}/{repo}:{tag}" for ns, repo, tag in PLANNED_BY_HAND}
    return {full: sorted(t for t in names if f"{full}:{t}" not in planned) for full, names in ALL_TAGS.items()}


# --------------------------------------------------------------------------- names (no server)


def test_variable_names_and_artifact_keys_are_valid_for_prefect():
    from prefect.client.schemas.actions import VariableCreate

    for instance_id in ("cri-abc123", "CRI-Upper", "cri.weird/id name", "x" * 300):
        name = whitelist_variable_name(instance_id)
        VariableCreate(name=name, value=True)  # raises when Prefect would refuse the name
        assert re.fullmatch(r"[a-z0-9-]+", artifact_key("console-gc", instance_id))
    assert whitelist_variable_name("cri-abc123") == "acr_gc_gc_enabled_cri-abc123"
    # distinct instances never share a record, even when they sanitise alike
    assert whitelist_variable_name("cri-a") != whitelist_variable_name("CRI-A")
    assert artifact_key("whitelist", "cri_a") != artifact_key("whitelist", "cri-a")


# --------------------------------------------------------------------------- flows on a real server


@pytest.mark.slow
def test_console_driver_pause_resume_and_public_api_monitoring(loaded, credentials):
    emu = loaded
    cfg = config(emu)
    planned = planned_frame(cfg)
    assert len(planned) == 24
    var_name = whitelist_variable_name(INSTANCE)
    assert variable(var_name) is None

    # ---- first monthly run: asks for the whitelist, then for the console click
    run = FlowInThread(DRIVE, run_name("first"), config=cfg, planned=planned.to_dict("records"))
    paused = run.wait_paused(WHITELIST_PAUSE_KEY)
    [art] = artifacts(paused.id, artifact_key("whitelist", INSTANCE))
    for text in (INSTANCE, REGION, "Submit Ticket", "Instances > Garbage Collection", "Execute", var_name):
        assert text in art.data, text
    assert variable(var_name) is None  # nothing recorded before the operator answers
    run.resume({"whitelisted": True, "note": "ticket 4711"})

    paused = run.wait_paused(START_PAUSE_KEY)
    recorded = variable(var_name)
    assert recorded is not None and recorded.value["whitelisted"] is True
    assert recorded.value["note"] == "ticket 4711" and recorded.value["instance_id"] == INSTANCE
    [art] = artifacts(paused.id, artifact_key("console-gc", INSTANCE))
    for text in (INSTANCE, REGION, "Instances > Garbage Collection", "Execute", "Confirm to clean up",
                 "cannot be recovered", BUCKET, "lifecycle", "24", "`infra/proxy` | 15", "`team/web` | 9"):
        assert text in art.data, text
    assert emu.truth()["instances"][INSTANCE]["gc_tasks"] == []  # the flow itself started nothing

    WATCHING.clear()
    emu.set_faults(gc_tags_per_second=0)  # GC paused: it moves only when the test lets it, below
    try:
        console_task = acr_client(cfg).gc_create()  # the person clicks Execute → Confirm in the console
        run.resume({"started": True})
        # the task goes part-way (at 0.5 tags/s its first tag goes at once, the next 2 s later)
        # and is held there until the flow's watcher has measured it mid-way
        emu.set_faults(gc_tags_per_second=0.5)
        _wait_until("the console task to delete a tag", lambda: _gc_task(emu)["tags_deleted"] >= 1)
        emu.set_faults(gc_tags_per_second=0)
        part_way = _gc_task(emu)
        assert part_way["state"] == "RUNNING" and 1 <= part_way["tags_deleted"] < 24, part_way
        _wait_until("the watcher to see the task part-way", lambda: any(0 < s.progress < 100 for s in WATCHING))
    finally:
        emu.set_faults(gc_tags_per_second=None)  # the emulator's own pace: the task runs to its end
    # every planned tag gone is not the task's end (the sweep follows): the person is asked
    paused = run.wait_paused(f"{FINISHED_PAUSE_KEY}-1")
    assert tags_left(emu) == expected_left()
    [art] = artifacts(paused.id, artifact_key("console-gc-finished", INSTANCE))
    assert f"console-{paused.id}" in art.data and "Garbage Collection" in art.data
    run.resume({"finished": False})  # "not yet": asked again
    paused = run.wait_paused(f"{FINISHED_PAUSE_KEY}-2")
    assert emu.truth()["instances"][INSTANCE]["gc_tasks"][0]["state"] == "SUCCESS"  # as the console shows
    run.resume({"finished": True, "state": "SUCCESS"})
    state = run.join()
    assert state.is_completed(), state
    out = state.result()
    final, seen = out["final"], out["seen"]

    assert final.state == "SUCCESS" and final.progress == 100
    assert final.tags_deleted == len(PLANNED_BY_HAND) == final.tags_planned
    assert (final.objects_deleted, final.bytes_deleted) == (0, 0)  # unknown through the public API
    assert final.task_id == f"console-{paused.id}"
    assert seen[0].state == "RUNNING" and seen[0].progress == 0
    progress = [s.progress for s in seen]
    assert progress == sorted(progress), progress
    assert any(0 < p < 100 for p in progress), progress  # watched while the task ran
    assert out["active_after"] is None
    # The emulator's truth agrees: its task deleted exactly the planned tags, nothing else.
    [task] = emu.truth()["instances"][INSTANCE]["gc_tasks"]
    assert (task["task_id"], task["state"], task["tags_deleted"]) == (console_task, "SUCCESS", final.tags_deleted)
    assert tags_left(emu) == expected_left()

    # ---- next month: the whitelist is recorded, so the only pause is the console click
    emu.load(dataset(credentials))
    run = FlowInThread(DRIVE, run_name("second"), config=cfg, planned=planned.to_dict("records"))
    paused = run.wait_paused(START_PAUSE_KEY)
    assert artifacts(paused.id, artifact_key("whitelist", INSTANCE)) == []
    console_task = acr_client(cfg).gc_create()
    run.resume({"started": True, "console_task_id": console_task})
    run.wait_paused(f"{FINISHED_PAUSE_KEY}-1")
    run.resume({"finished": True})
    state = run.join()
    assert state.is_completed(), state
    final = state.result()["final"]
    assert (final.task_id, final.state, final.tags_deleted) == (f"console-{console_task}", "SUCCESS", 24)
    # no whitelist question this time: the console click and the end of the task only
    assert run.flow_run().empirical_policy.pause_keys == {START_PAUSE_KEY, f"{FINISHED_PAUSE_KEY}-1"}
    assert tags_left(emu) == expected_left()


@pytest.mark.slow
def test_not_whitelisted_answer_means_not_enabled_and_nothing_recorded(loaded):
    emu = loaded
    cfg = config(emu, OTHER)
    run = FlowInThread(DRIVE, run_name("nowl"), config=cfg, planned=[])
    run.wait_paused(WHITELIST_PAUSE_KEY)
    run.resume({"whitelisted": False, "note": "ticket still open"})
    state = run.join()
    assert state.is_completed(), state
    assert state.result() == {"enabled": False}
    assert variable(whitelist_variable_name(OTHER)) is None  # asked again next time
    assert emu.truth()["instances"][OTHER]["gc_tasks"] == []
    assert tags_left(emu, OTHER) == {full: sorted(names) for full, names in ALL_TAGS.items()}


@pytest.mark.slow
def test_operator_did_not_start_and_cancel_asks_for_the_console(loaded):
    emu = loaded
    cfg = config(emu)
    planned = planned_frame(cfg).to_dict("records")

    run = FlowInThread(START_ONLY, run_name("notstarted"), config=cfg, planned=planned)
    run.wait_paused(START_PAUSE_KEY)
    run.resume({"started": False, "note": "change freeze this week"})
    state = run.join()
    assert state.is_failed(), state
    with pytest.raises(GcNotStarted, match=f"not started in the console for ACR instance {INSTANCE}"):
        state.result()
    assert emu.truth()["instances"][INSTANCE]["gc_tasks"] == []

    # Cancel: the public API cannot; the operator is told where to click; the status is current.
    acr = acr_client(cfg)
    repos = {r.full_name: r.repo_id for r in acr.list_repositories()}
    for tag in WEB_EXPIRED[:4]:  # as if the console task had deleted four tags so far
        acr.delete_repo_tag(repos["team/web"], tag, resource="team/web")
    run = FlowInThread(CANCEL_ONLY, run_name("cancel"), config=cfg, planned=planned, task_id="console-x")
    state = run.join()
    assert state.is_completed(), state
    status = state.result()
    assert (status.task_id, status.state, status.tags_deleted, status.progress) == ("console-x", "RUNNING", 4, 16)
    [art] = artifacts(run.flow_run().id, artifact_key("console-gc-cancel", INSTANCE))
    for text in (INSTANCE, REGION, "Cancel", "Instances > Garbage Collection", "4 of 24"):
        assert text in art.data, text


@pytest.mark.slow
def test_nobody_answers_within_the_timeout(loaded):
    """The pause waits gc.timeout (here 1 s), then the run stops with a clear error."""
    emu = loaded
    cfg = config(emu, OTHER, timeout=1)
    run = FlowInThread(START_ONLY, run_name("timeout"), config=cfg, planned=[])
    run.wait_paused(START_PAUSE_KEY)
    state = run.join(timeout=30)
    # Once a pause has expired, Prefect's server accepts only its own Failed state for the run
    # ("The flow was failed and never resumed."); the driver's error reaches the run's logs.
    assert state.is_failed(), state
    assert "never resumed" in (state.message or "")
    expected = re.compile(f"OperatorDidNotAnswer: nobody answered .* for ACR instance {OTHER} within 1 s")
    flow_run_id = run.flow_run().id
    deadline = time.monotonic() + 15
    while not any(expected.search(line) for line in run_logs(flow_run_id)):
        assert time.monotonic() < deadline, run_logs(flow_run_id)
        time.sleep(0.2)
    assert emu.truth()["instances"][OTHER]["gc_tasks"] == []


def test_pausing_methods_refuse_outside_a_flow_run():
    cfg = Config(target=Target(instance_id=INSTANCE, bucket=BUCKET, acr_endpoint="127.0.0.1:9"),
                 freeze=Freeze(principals=["ops-writer"]), gc=Gc(driver="console"))
    driver = ConsoleGcDriver(cfg, acr_client(cfg), None)
    with pytest.raises(ConsoleGcError, match="flow function"):
        driver.start()
    assert driver.active_task() is None


@pytest.mark.slow
def test_reclaim_storage_with_the_console_driver_end_to_end(loaded, tmp_path):
    """The whole pipeline on the console driver: the flow pauses for the whitelist, then —
    with the bucket frozen — for the console click; the test answers as a person would and
    clicks Execute (the emulator's GC); monitoring from the public API alone completes the
    run, and the bucket is thawed."""
    import json

    from prefect import get_client

    from acr_gc.config import Freeze, Ledger, Policy, Report, Sampling
    from acr_gc.flows.reclaim import reclaim_storage

    emu = loaded
    with get_client(sync_client=True) as client:  # a first monthly run for this instance
        try:
            client.delete_variable_by_name(whitelist_variable_name(INSTANCE))
        except Exception:  # noqa: BLE001 - absent already
            pass
    cfg = config(emu).model_copy(update={
        # nothing here can be regenerated by alias, replica or build rule: the operator allows it
        "policy": Policy(allow_unregenerable=["team/web:*", "infra/proxy:*"]),
        "freeze": Freeze(principals=["ops-writer"]),
        "sampling": Sampling(mode="scheduled"),
        "report": Report(out_dir=tmp_path / "out"),
        "ledger": Ledger(url=f"sqlite:///{tmp_path / 'ledger.db'}"),
    })
    run = FlowInThread(reclaim_storage, run_name("pipeline"), config=cfg, run_id="console-e2e")
    run.wait_paused(WHITELIST_PAUSE_KEY, timeout=90)
    assert emu.truth()["buckets"][BUCKET].get("policy") is None  # asked before any change
    run.resume({"whitelisted": True})

    run.wait_paused(START_PAUSE_KEY, timeout=90)
    policy = emu.truth()["buckets"][BUCKET]["policy"]
    assert policy is not None and "AcrGcFreeze" in json.dumps(policy)  # frozen before the click
    assert emu.truth()["instances"][INSTANCE]["gc_tasks"] == []
    acr_client(cfg).gc_create()  # the person clicks Execute → Confirm
    run.resume({"started": True, "console_task_id": "console-123"})
    run.wait_paused(f"{FINISHED_PAUSE_KEY}-1", timeout=90)
    assert "AcrGcFreeze" in json.dumps(emu.truth()["buckets"][BUCKET]["policy"])  # frozen until confirmed
    run.resume({"finished": True})

    state = run.join(timeout=120)
    assert state.is_completed(), state
    summary = json.loads((tmp_path / "out" / INSTANCE / "console-e2e" / "summary.json").read_text())
    assert summary["state"] == "GC_DONE"
    assert summary["gc"] == {"driver": "console", "task_id": "console-console-123", "state": "SUCCESS",
                             "tags_deleted": 24}
    checks = dict(summary["checks"])
    # issue 11: which readings agree with the console GC (the emulator plays the default one)
    assert "any-retains/count-or-match/full" in checks.pop("readings_consistent")
    assert checks == {"unexpected_deletions": 0, "missed_deletions": 0, "freeze_restored": True}
    assert {k: sorted(v) for k, v in tags_left(emu).items()} == expected_left()
    assert emu.truth()["buckets"][BUCKET].get("policy") is None  # thawed: no policy, as before


@pytest.mark.slow
def test_a_console_run_nobody_confirms_leaves_the_bucket_frozen_until_thaw_force(loaded, tmp_path, credentials,
                                                                                  prefect_server):
    """Nobody answers "has the GC task finished?" within gc.timeout: the run ends FAILED with
    the bucket still frozen (the console task may still sweep). `acr-gc thaw` refuses while
    the task is unconfirmed; after the person has seen it end, `acr-gc thaw --force` puts
    the original policy back (JSON-equal)."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    import yaml
    from prefect.variables import Variable

    from acr_gc.config import Ledger, Policy, Report, Sampling
    from acr_gc.flows.reclaim import reclaim_storage

    emu = loaded
    original = {"Version": "1", "Statement": [{"Sid": "keep-me", "Effect": "Deny", "Principal": ["intern"],
                                               "Action": ["oss:DeleteObject"],
                                               "Resource": [f"acs:oss:*:*:{BUCKET}/*"]}]}
    data = dataset(credentials)
    data["buckets"][0]["policy"] = original
    emu.load(data)
    Variable.set(whitelist_variable_name(INSTANCE), {"whitelisted": True}, overwrite=True)
    cfg = config(emu, timeout=6).model_copy(update={
        "policy": Policy(allow_unregenerable=["team/web:*", "infra/proxy:*"]),
        "sampling": Sampling(mode="scheduled"),
        "report": Report(out_dir=tmp_path / "out"),
        "ledger": Ledger(url=f"sqlite:///{tmp_path / 'ledger.db'}"),
    })
    run = FlowInThread(reclaim_storage, run_name("unconfirmed"), config=cfg, run_id="console-unconfirmed")
    run.wait_paused(START_PAUSE_KEY, timeout=90)
    acr_client(cfg).gc_create()
    run.resume({"started": True, "console_task_id": "c-9"})
    run.wait_paused(f"{FINISHED_PAUSE_KEY}-1", timeout=60)  # ... and nobody answers
    state = run.join(timeout=120)
    assert state.is_failed(), state
    assert emu.truth()["instances"][INSTANCE]["gc_tasks"][0]["state"] == "SUCCESS"  # (the console knows)
    policy = emu.truth()["buckets"][BUCKET]["policy"]
    assert policy["Statement"][0] == original["Statement"][0], policy
    assert [s["Sid"][:11] for s in policy["Statement"][1:]] == ["AcrGcFreeze"], policy
    summary = json.loads((tmp_path / "out" / INSTANCE / "console-unconfirmed" / "summary.json").read_text())
    assert summary["state"] == "FAILED" and summary["checks"]["freeze_restored"] is False, summary

    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json")), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALIBABA_CLOUD_", "PREFECT_API_"))}
    env.update(ALIBABA_CLOUD_ACCESS_KEY_ID=credentials[0]["access_key_id"],
               ALIBABA_CLOUD_ACCESS_KEY_SECRET=credentials[0]["access_key_secret"], PREFECT_API_URL=prefect_server)
    root = Path(__file__).resolve().parents[2]

    def thaw(*extra):
        return subprocess.run([sys.executable, "-m", "acr_gc.cli", "thaw", "--config", str(path), *extra], env=env,
                              cwd=root, capture_output=True, text=True, timeout=180)

    refused = thaw()
    assert refused.returncode == 3, (refused.stdout, refused.stderr)
    assert "console GC task console-c-9 was never confirmed finished" in refused.stderr, refused.stderr
    assert "AcrGcFreeze" in json.dumps(emu.truth()["buckets"][BUCKET]["policy"])
    done = thaw("--force")  # the person has seen the task end in the console
    assert done.returncode == 0, (done.stdout, done.stderr)
    assert json.dumps(emu.truth()["buckets"][BUCKET]["policy"], sort_keys=True) == json.dumps(original, sort_keys=True)
