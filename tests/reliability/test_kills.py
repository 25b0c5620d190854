"""SIGKILL of `acr-gc run` at each step boundary; then `acr-gc thaw` and a new run.

What each case proves: whatever the moment of the kill — no hook, `except` or `finally`
runs after SIGKILL — the ledger alone lets `acr-gc thaw` give the bucket its original
policy back (JSON-equal) once the killed run's GC has ended (while it runs, thaw refuses
with exit 3), and the next run finishes the job: exactly ONE GC task over the
whole story (a killed run's task is taken over, never doubled), the tags left are exactly
the hand-worked retained set, the report's before/after bytes are the emulator's truth,
and savings.csv holds exactly one row for the instance.

The kill lands at an exact call: the emulator *holds* the request that starts the next
step (`/_emulator/faults {"hold": …}`: accepted, never answered; dropped once the killed
client's connection closes, so it never lands later), the test waits until the run is
parked there and kills its process group.

| boundary | held request | the run has … |
|---|---|---|
| before freeze | 1st PutBucketPolicy | recorded the freeze (intent) — the bucket untouched |
| frozen | CreateGarbageCollectionTask | frozen the bucket, recorded the GC start — no task (the next run plans afresh) |
| GC running | (none: GC slowed) | a task deleting tags under the freeze |
| after GC, before thaw | 2nd PutBucketPolicy (the thaw) | a finished task, the bucket still frozen |
| during sampling | 5th GetBucketStat (plan, baseline twice, after GC, then the 1st inline sample) | thawed; sampled before and after GC |

Dataset: tests/pipeline/crash_support.py (40 expired tags worked out by hand there),
sampling inline on one-second emulated days, the session's Prefect server.
"""

from __future__ import annotations

import csv
import json
import signal
import sqlite3
import sys
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pipeline"))
import crash_support as cs  # noqa: E402

from acr_gc.emulator.process import EmulatorProcess  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

BOUNDARIES = {
    # name: (hold, GC speed in tags/s)
    "before-freeze": ({"action": "PutBucketPolicy", "skip": 0}, 40.0),
    "frozen": ({"action": "CreateGarbageCollectionTask", "skip": 0}, 40.0),
    "gc-running": (None, 4.0),
    "after-gc-before-thaw": ({"action": "PutBucketPolicy", "skip": 1}, 40.0),
    # issue 12: the baseline asks twice — the first answer's figures (its LastModifiedTime)
    # always predate the moment it was asked, which the baseline must cover
    "during-sampling": ({"action": "GetBucketStat", "skip": 4}, 40.0),
}


def _same_json(a, b) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def _inline_config(tmp_path: Path, emu) -> Path:
    path = cs.write_config(tmp_path / "config.yaml", emu, tmp_path)
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    config["sampling"] = {"mode": "inline", "interval": "P1D", "day_length": "PT1S", "margin_days": 1}
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def _ledger(tmp_path: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(tmp_path / "ledger.db") as db:
        return db.execute(sql).fetchall()


def _parked(emu, boundary: str, tmp_path: Path):
    """A predicate: the run is stopped exactly at ``boundary``."""
    def check():
        truth = emu.truth()
        tasks, policy = cs.gc_tasks(truth), cs.bucket_policy(truth)
        if boundary == "gc-running":
            return truth if [t["state"] for t in tasks] == ["RUNNING"] and cs.freeze_sids(policy) else None
        return truth if truth["faults"]["held"] >= 1 else None
    return check


def _assert_at_boundary(boundary: str, truth: dict, tmp_path: Path) -> None:
    tasks, sids = cs.gc_tasks(truth), cs.freeze_sids(cs.bucket_policy(truth))
    freezes = [status for (status,) in _ledger(tmp_path, "SELECT status FROM freezes")]
    gc_rows = _ledger(tmp_path, "SELECT task_id, state FROM gc_tasks")
    phases = [phase for (phase,) in _ledger(tmp_path, "SELECT phase FROM samples ORDER BY id")]
    expected = {
        "before-freeze": (0, 0, ["intent"], 0),
        "frozen": (0, 1, ["applied"], 1),
        "gc-running": (1, 1, ["applied"], 1),
        "after-gc-before-thaw": (1, 1, ["applied"], 1),
        "during-sampling": (1, 0, ["restored"], 1),
    }[boundary]
    seen = (len(tasks), len(sids), freezes, len(gc_rows))
    assert seen == expected, f"{boundary}: tasks, freeze statements, ledger freezes, gc rows = {seen}"
    if boundary == "frozen":
        assert gc_rows == [(None, "intent")], gc_rows  # the start recorded before it was sent
    if boundary in ("after-gc-before-thaw", "during-sampling"):
        assert tasks[0]["state"] == "SUCCESS", tasks
    if boundary == "during-sampling":
        assert phases == ["before", "after"], phases  # held: the first inline sample


def test_sigkill_at_each_step_boundary_then_thaw_and_a_new_run_finish_cleanly(prefect_api_url, tmp_path):
    """The five boundaries side by side (each its own emulator, ledger and processes):
    they mostly wait — on GC, on emulated days — so together they take little more than
    the slowest one. Every boundary's failure is reported, named."""
    failures: dict[str, str] = {}

    def one(boundary: str) -> None:
        workdir = tmp_path / boundary
        workdir.mkdir()
        children = cs.Children(workdir)
        try:
            _kill_then_recover(boundary, prefect_api_url, children, workdir)
        except BaseException:  # noqa: BLE001 - collected, and the test fails on it
            failures[boundary] = traceback.format_exc(limit=4)
        finally:
            children.stop_all()

    with ThreadPoolExecutor(max_workers=len(BOUNDARIES)) as pool:
        list(pool.map(one, BOUNDARIES))
    assert not failures, "\n\n".join(f"== {name} ==\n{text}" for name, text in failures.items())


def _kill_then_recover(boundary: str, prefect_api_url: str, children, tmp_path: Path) -> None:
    hold, gc_rate = BOUNDARIES[boundary]
    with EmulatorProcess(cs.dataset(cs.ORIGINAL_POLICY), gc_tags_per_second=gc_rate, day_seconds=1) as emu:
        storage_before = emu.truth()["buckets"][cs.BUCKET]["storage_bytes"]
        config = _inline_config(tmp_path, emu)
        env = cs.base_env(tmp_path / "prefect-home", prefect_api_url)
        with cs.TruthRecorder(emu) as seen:
            if hold:
                emu.set_faults(hold=hold)
            first = children.start("run", cs.acr_gc_args("run", "--config", str(config)), env)
            cs.wait_for(f"the run parked at {boundary}", _parked(emu, boundary, tmp_path), 300, emu, first)
            first.kill_group(signal.SIGKILL)
            assert first.wait(15) == -signal.SIGKILL, cs.diagnostics(emu, first)
            emu.set_faults(hold=None)  # the killed run's held request is dropped, not answered
            _assert_at_boundary(boundary, emu.truth(), tmp_path)

            thaw = children.start("thaw", cs.acr_gc_args("thaw", "--config", str(config)), env)
            rc = thaw.wait(90)
            if boundary == "gc-running" and rc == 3:  # issue 12: no thaw while the killed run's GC runs
                assert "is RUNNING" in thaw.output() and cs.freeze_sids(cs.bucket_policy(emu.truth())), \
                    cs.diagnostics(emu, thaw)
                cs.wait_for("the killed run's GC task to end",
                            lambda: cs.gc_tasks(emu.truth())[0]["state"] == "SUCCESS", 90, emu)
                thaw = children.start("thaw-again", cs.acr_gc_args("thaw", "--config", str(config)), env)
                rc = thaw.wait(90)
            assert rc == 0, cs.diagnostics(emu, thaw)
            assert _same_json(cs.bucket_policy(emu.truth()), cs.ORIGINAL_POLICY), "thaw gives the policy back"

            second = children.start("run2", cs.acr_gc_args("run", "--config", str(config)), env)
            rc = second.wait(180)
        out = second.output()
        assert rc == 0 and "state: COMPLETE" in out, cs.diagnostics(emu, second)

        truth = emu.truth()
        assert not seen.errors, seen.errors
        assert len(seen.task_ids) == 1, f"GC tasks over the test: {seen.task_ids}"
        assert [t["state"] for t in cs.gc_tasks(truth)] == ["SUCCESS"]
        assert truth["instances"][cs.INSTANCE]["tags"] == cs.RETAINED
        assert _same_json(cs.bucket_policy(truth), cs.ORIGINAL_POLICY)
        assert all(len(cs.freeze_sids(p)) <= 1 for p in seen.policies), "a freeze was stacked"
        assert _ledger(tmp_path, "SELECT status FROM freezes WHERE status != 'restored'") == []

        summary = cs.read_summary(tmp_path, out)
        assert summary["state"] == "COMPLETE", summary
        checks = dict(summary["checks"])
        assert "any-retains/count-or-match/full" in checks.pop("readings_consistent")  # issue 11
        assert checks == {"unexpected_deletions": 0, "missed_deletions": 0, "freeze_restored": True}
        assert summary["gc"]["task_id"] == next(iter(seen.task_ids))
        assert summary["storage"]["before_bytes"] == storage_before
        assert summary["storage"]["after_bytes"] == truth["buckets"][cs.BUCKET]["storage_bytes"]
        with open(tmp_path / "out" / "savings.csv", newline="", encoding="utf-8") as handle:
            rows = [row for row in csv.DictReader(handle) if row["instance"] == cs.INSTANCE]
        assert len(rows) == 1, rows
        states = _ledger(tmp_path, "SELECT run_id, state, message FROM runs ORDER BY started_at")
        assert [s for _, s, _ in states] == ["FAILED", "COMPLETE"], states
        assert states[0][2].startswith("interrupted (its process is gone)"), states[0]
        # issue 11: a GC start with no task id and no active task is not inherited: the next run
        # planned afresh (its own gate) and started the one task; a task that exists is taken over
        inherited = boundary in ("gc-running", "after-gc-before-thaw", "during-sampling")
        assert ("took over its GC task" in states[0][2]) == inherited, states[0]
        # the takeover is told where the operator looks: the flow run's logs in the dashboard
        flow_run_id = _ledger(tmp_path, f"SELECT flow_run_id FROM runs WHERE run_id = '{states[1][0]}'")[0][0]
        took_over = f"instance {cs.INSTANCE}: took over the lock of run {states[0][0]}"
        assert any(took_over in line for line in _api_log_lines(prefect_api_url, flow_run_id)), flow_run_id


def _api_log_lines(api_url: str, flow_run_id: str) -> list[str]:
    import uuid

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: api_url}), get_client(sync_client=True) as client:
        logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[uuid.UUID(flow_run_id)])))
    return [f"{log.name} - {log.message}" for log in logs]
