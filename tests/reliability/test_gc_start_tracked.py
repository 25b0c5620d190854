"""The GC start as the ledger and the freeze see it (issue 14 item 6).

* The intent row carries a client token, and the task is started with it: a repeated
  create with that token answers the same task (the emulator's ClientToken idempotency).
* A ledger that fails right after the task started — between the driver's answer and
  the write that records it — must not leave a GC running unwatched under a thawed
  bucket: the run knows of the task before that write, so it stops the task, and thaws
  only once it is seen ended.

The failing ledger is a real one: a SQLite trigger in the run's ledger refuses the
update that records the started task (what a disk full or a lost connection at that
moment would do). Real parts: the session emulator, the SDKs, ``reclaim_storage`` on the
session's Prefect server.
"""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pipeline"))
from pipeline_support import OPS_AK, OPS_SECRET, config_dict, dataset, ledger_rows, run_flow, summary_of  # noqa: E402

from acr_gc.ledger import Ledger  # noqa: E402

INSTANCE, BUCKET = "cri-frz", "cri-frz-storage"


def test_a_create_repeated_with_its_client_token_answers_the_same_task(emulator, acr_client, gc_call):
    emulator.load(dataset())
    client = acr_client(OPS_AK, OPS_SECRET)
    first = gc_call(client, "CreateGarbageCollectionTask", InstanceId=INSTANCE, ClientToken="tok-1")
    again = gc_call(client, "CreateGarbageCollectionTask", InstanceId=INSTANCE, ClientToken="tok-1")
    assert first["TaskId"] == again["TaskId"] and again["ClientToken"] == "tok-1"
    assert [t["task_id"] for t in emulator.truth()["instances"][INSTANCE]["gc_tasks"]] == [first["TaskId"]]


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_ledger_failing_right_after_the_gc_start_leaves_no_gc_running_unwatched(emulator, prefect_api_url,
                                                                                tmp_path, monkeypatch):
    emulator.load(dataset())
    config = config_dict((emulator.acr_endpoint, emulator.oss_endpoint), tmp_path, INSTANCE, BUCKET)
    Ledger(config["ledger"]["url"]).dispose()  # the tables, then the fault in the database itself
    with sqlite3.connect(tmp_path / "ledger.db") as db:
        db.execute("CREATE TRIGGER fail_recording_the_started_task BEFORE UPDATE OF task_id ON gc_tasks "
                   "WHEN NEW.task_id IS NOT NULL BEGIN SELECT RAISE(ABORT, 'ledger failing at this moment'); END")

    state, folder = run_flow(config, monkeypatch)

    assert state.is_failed(), state
    tasks = emulator.truth()["instances"][INSTANCE]["gc_tasks"]
    assert len(tasks) == 1
    task = gc_task(emulator, tasks[0]["task_id"])
    policy = emulator.truth()["buckets"][BUCKET]["policy"]
    # stopped by the run, not left to run on; and thawed only because it is seen ended
    assert task["State"] == "CANCELED", task
    assert policy is None  # cri-frz-storage had no policy: restored exactly
    assert [f.status for f in ledger_rows(config, folder.name)["freezes"]] == ["restored"]
    # the intent row was written first, with the token the task was started with
    rows = ledger_rows(config, folder.name)["gc_tasks"]
    assert [r.client_token for r in rows] == [task["ClientToken"]] and len(task["ClientToken"]) == 32
    summary = summary_of(folder)
    assert summary["state"] == "FAILED" and summary["gc"]["task_id"] == task["TaskId"]
    assert summary["checks"]["freeze_restored"] is True


def gc_task(emulator, task_id: str) -> dict:
    from emulator_kit import call_gc_action, make_acr_client

    return call_gc_action(make_acr_client(emulator.acr_endpoint, OPS_AK, OPS_SECRET), "GetGarbageCollectionTask",
                          InstanceId=INSTANCE, TaskId=task_id)
