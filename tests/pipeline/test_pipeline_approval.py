"""The plan's approval and the notifications (issue 15 items 1-2), on the hand-worked
instance cri-run (pipeline_support.py): 17 tags, 7 expired, none unregenerable.

The flow runs in this process on the session's real Prefect server; the test answers its
``ApprovePlan`` pause through the Prefect API, as the UI's form does. Notifications go
through a real Prefect ``CustomWebhookNotificationBlock`` saved on that server to a local
HTTP receiver that records every message. The emulator's truth is the witness that
nothing changed before a yes, and that a yes deleted exactly the hand-worked set.
"""

from __future__ import annotations

import pytest

from operator_support import Receiver, save_webhook_block, start_reclaim
from pipeline_support import (
    RUN_EXPIRED,
    RUN_RETAINED,
    cloud_state,
    config_dict,
    dataset,
    ledger_rows,
    summary_of,
)

pytestmark = pytest.mark.slow

PAUSE_KEY = "acr-gc-approve-plan"


@pytest.fixture
def receiver():
    hook = Receiver()
    yield hook
    hook.close()


def _config(emulator, tmp_path, receiver, instance="cri-run", **sections):
    return config_dict((emulator.acr_endpoint, emulator.oss_endpoint), tmp_path, instance, f"{instance}-storage",
                       approval={"required": True, "timeout": 120, "approvers": ["alice", "bob"]},
                       notify={"block": save_webhook_block("acr-gc-test-hook", receiver.url)}, **sections)


def _approval_row(config: dict, run_id: str):
    from acr_gc.ledger import Ledger
    from acr_gc.ledger.models import Approval

    ledger = Ledger(config["ledger"]["url"])
    try:
        with ledger.session() as session:
            return session.get(Approval, run_id)
    finally:
        ledger.dispose()


def _events(receiver) -> list[str]:
    return [subject.rsplit(": ", 1)[1] for subject in receiver.subjects()]


def test_approved_through_the_api_runs_gc_and_notifies_each_event_once(emulator, prefect_api_url, tmp_path,
                                                                        monkeypatch, receiver):
    emulator.load(dataset())
    before = cloud_state(emulator.truth())
    config = _config(emulator, tmp_path, receiver)
    run, folder = start_reclaim(config, monkeypatch, "approve")
    paused = run.wait_paused(PAUSE_KEY)

    # The form's description is the plan's headline: 7 of 17 tags, none unregenerable.
    description = run.description(paused)
    assert f"tags to delete: {len(RUN_EXPIRED)} of 17" in description
    assert "allowed by policy.allow_unregenerable: 0" in description
    assert "acr-gc-plan-cri-run" in description and str(folder / "plan.csv") in description
    assert cloud_state(emulator.truth()) == before  # waiting changed nothing
    assert _events(receiver) == ["AWAITING_APPROVAL"]
    assert description.splitlines()[0] in receiver.messages[0]["body"]

    run.resume({"approve": True, "answered_by": "alice", "reason": "checked plan.csv"})
    state = run.join()
    summary = summary_of(folder)
    assert state.is_completed(), state.message
    assert summary["state"] == "GC_DONE"
    assert emulator.truth()["instances"]["cri-run"]["tags"] == RUN_RETAINED

    row = _approval_row(config, folder.name)
    assert (row.approved, row.answered_by, row.reason, row.via) == (True, "alice", "checked plan.csv", "prefect")
    assert row.answered_at >= row.asked_at
    report = (folder / "report.md").read_text(encoding="utf-8")
    assert "Plan approved by alice (prefect, " in report and ": checked plan.csv" in report

    # GC_DONE: once, with the figures of the run.
    assert _events(receiver) == ["AWAITING_APPROVAL", "GC_DONE"]
    body = receiver.messages[1]["body"]
    assert f"{len(RUN_EXPIRED)} of 17 tags to delete" in body
    assert f"GC task {summary['gc']['task_id']}: SUCCESS, {len(RUN_EXPIRED)} tags deleted" in body

    # The window closes (3 noncurrent days + 2 margin): the daily sampler makes the report
    # final and tells it once; a second pass tells nothing more.
    from acr_gc.config import Config
    from acr_gc.flows.sample import sample_storage

    emulator.advance_clock(6)
    sample_storage(Config.model_validate(config))
    sample_storage(Config.model_validate(config))
    final = summary_of(folder)
    assert final["state"] == "COMPLETE"
    assert _events(receiver) == ["AWAITING_APPROVAL", "GC_DONE", "COMPLETE"]
    body = receiver.messages[2]["body"]
    assert f"({final['storage']['reclaimed_bytes']} bytes, {final['storage']['reclaimed_pct']}%)" in body
    assert f"saving {final['cost']['saving_per_month']} CNY per month" in body
    assert str(folder / "report.html") in body


def test_rejected_through_the_api_changes_nothing(emulator, prefect_api_url, tmp_path, monkeypatch, receiver):
    emulator.load(dataset())
    before = cloud_state(emulator.truth())
    config = _config(emulator, tmp_path, receiver)
    run, folder = start_reclaim(config, monkeypatch, "reject")
    run.wait_paused(PAUSE_KEY)
    run.resume({"approve": False, "answered_by": "bob", "reason": "release freeze this week"})
    state = run.join()
    assert state.is_failed()
    assert summary_of(folder)["state"] == "REJECTED"
    assert cloud_state(emulator.truth()) == before
    row = _approval_row(config, folder.name)
    assert (row.approved, row.answered_by, row.reason) == (False, "bob", "release freeze this week")
    assert ledger_rows(config, folder.name)["freezes"] == [] and ledger_rows(config, folder.name)["gc_tasks"] == []
    assert _events(receiver) == ["AWAITING_APPROVAL", "REJECTED"]
    assert "release freeze this week" in receiver.messages[1]["body"]


def test_a_yes_from_someone_not_listed_is_a_no(emulator, prefect_api_url, tmp_path, monkeypatch, receiver):
    emulator.load(dataset())
    before = cloud_state(emulator.truth())
    config = _config(emulator, tmp_path, receiver)
    run, folder = start_reclaim(config, monkeypatch, "stranger")
    run.wait_paused(PAUSE_KEY)
    run.resume({"approve": True, "answered_by": "mallory", "reason": "looks fine"})
    run.join()
    assert summary_of(folder)["state"] == "REJECTED"
    assert cloud_state(emulator.truth()) == before
    assert _approval_row(config, folder.name).approved is False


def test_no_answer_within_the_timeout_is_rejected(emulator, prefect_api_url, tmp_path, monkeypatch, receiver):
    emulator.load(dataset())
    before = cloud_state(emulator.truth())
    config = _config(emulator, tmp_path, receiver)
    config["approval"]["timeout"] = 2
    run, folder = start_reclaim(config, monkeypatch, "timeout")
    run.wait_paused(PAUSE_KEY)
    run.join()
    summary = summary_of(folder)
    assert summary["state"] == "REJECTED"
    assert cloud_state(emulator.truth()) == before
    row = _approval_row(config, folder.name)
    assert (row.approved, row.via) == (False, "timeout")
    assert _events(receiver) == ["AWAITING_APPROVAL", "REJECTED"]


def test_blocked_and_failed_runs_notify_once(emulator, prefect_api_url, tmp_path, monkeypatch, receiver):
    from pipeline_support import run_flow

    emulator.load(dataset())
    # cri-gate: s1 has no way back, the gate blocks before any question.
    (tmp_path / "gate").mkdir()
    config = _config(emulator, tmp_path / "gate", receiver, instance="cri-gate")
    state, folder = run_flow(config, monkeypatch)
    assert summary_of(folder)["state"] == "BLOCKED"
    assert _events(receiver) == ["BLOCKED"]
    assert "gate blocked" in receiver.messages[0]["body"]

    # cri-frz: 30 tags to delete at 20 a second, gc.timeout 0.3 s: the run FAILS (GC cancelled).
    receiver.messages.clear()
    (tmp_path / "frz").mkdir()
    config = _config(emulator, tmp_path / "frz", receiver, instance="cri-frz",
                     gc={"timeout": 0.3, "poll_interval": 0.1})
    config["approval"]["required"] = False
    state, folder = run_flow(config, monkeypatch)
    summary = summary_of(folder)
    assert summary["state"] == "FAILED", summary
    assert _events(receiver) == ["FAILED"]
    assert f"GC task {summary['gc']['task_id']}" in receiver.messages[0]["body"]


def test_a_failing_receiver_never_fails_the_run(emulator, prefect_api_url, tmp_path, monkeypatch):
    from pipeline_support import run_flow

    emulator.load(dataset())
    broken = Receiver(status=500)
    try:
        config = config_dict((emulator.acr_endpoint, emulator.oss_endpoint), tmp_path, "cri-run", "cri-run-storage",
                             notify={"block": save_webhook_block("acr-gc-broken-hook", broken.url)})
        state, folder = run_flow(config, monkeypatch)
    finally:
        broken.close()
    assert state.is_completed(), state.message
    assert summary_of(folder)["state"] == "GC_DONE"
    assert [m["subject"] for m in broken.messages] == ["acr-gc cri-run: GC_DONE"]  # it was tried, and failed
    assert emulator.truth()["instances"]["cri-run"]["tags"] == RUN_RETAINED


def test_a_served_deployment_pauses_for_approval_and_runs_once_approved(emulator, prefect_api_url, tmp_path,
                                                                         receiver):
    """As a scheduled deployment runs: ``reclaim_storage.serve()`` in its own process, a run
    started through the API, paused in the runner's subprocess, answered through the API."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from prefect import get_client
    from prefect.deployments import run_deployment
    from prefect.flow_runs import resume_flow_run
    from prefect.input.actions import read_flow_run_input
    from prefect.input.run_input import keyset_from_paused_state

    from pipeline_support import ROOT, cli_env

    emulator.load(dataset())
    before = cloud_state(emulator.truth())
    config = _config(emulator, tmp_path, receiver)
    name = f"approval-{time.time_ns()}"
    env = {**cli_env(prefect_api_url), "PREFECT_LOGGING_EXTRA_LOGGERS": "acr_gc"}
    log = open(tmp_path / "serve.log", "wb")
    served = subprocess.Popen(
        [sys.executable, "-c", "from acr_gc.flows.reclaim import reclaim_storage; "
                               f"reclaim_storage.serve(name={name!r}, print_starting_message=False)"],
        env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def wait(what, predicate, timeout=240):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            assert served.poll() is None, (tmp_path / "serve.log").read_text(errors="replace")[-3000:]
            time.sleep(0.5)
        raise AssertionError(f"{what} within {timeout} s\n" + (tmp_path / "serve.log").read_text(errors="replace")[-3000:])

    def flow_run(flow_run_id):
        with get_client(sync_client=True) as client:
            return client.read_flow_run(flow_run_id)

    def deployed():
        with get_client(sync_client=True) as client:
            try:
                return client.read_deployment_by_name(f"reclaim-storage/{name}")
            except Exception:
                return None

    try:
        wait("the deployment is served", deployed)
        started = run_deployment(f"reclaim-storage/{name}", parameters={"config": config}, timeout=0)
        paused = wait("the run pauses for approval", lambda: (lambda r: r if r.state and r.state.is_paused()
                                                              else None)(flow_run(started.id)))
        assert paused.state.state_details.pause_key == PAUSE_KEY
        description = read_flow_run_input(keyset_from_paused_state(paused.state)["description"], flow_run_id=paused.id)
        assert f"tags to delete: {len(RUN_EXPIRED)} of 17" in description
        assert cloud_state(emulator.truth()) == before
        resume_flow_run(started.id, run_input={"approve": True, "answered_by": "bob", "reason": "ok from the UI"})
        ended = wait("the run ends", lambda: (lambda r: r if r.state and r.state.is_final() else None)(
            flow_run(started.id)))
    finally:
        os.killpg(served.pid, signal.SIGTERM)
        try:
            served.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(served.pid, signal.SIGKILL)
            served.wait()
        log.close()
    assert ended.state.is_completed(), (ended.state, (tmp_path / "serve.log").read_text(errors="replace")[-3000:])
    (folder,) = [p for p in (tmp_path / "out" / "cri-run").iterdir() if p.is_dir()]
    assert summary_of(folder)["state"] == "GC_DONE"
    assert emulator.truth()["instances"]["cri-run"]["tags"] == RUN_RETAINED
    row = _approval_row(config, folder.name)
    assert (row.approved, row.answered_by, row.via) == (True, "bob", "prefect")
    assert _events(receiver) == ["AWAITING_APPROVAL", "GC_DONE"]
