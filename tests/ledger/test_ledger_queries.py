"""The ledger's named operations (issue 14 item 1) against a real SQLite ledger in tmp.

Each function is checked by reading the rows back with plain SQL (``sqlite3``, not the
function under test), so a query that writes the wrong row or column fails here.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timedelta, timezone

import pytest

from acr_gc.gc.driver import GcStatus
from acr_gc.ledger import Ledger
from acr_gc.cloud.registry import Manifest
from acr_gc.ledger import approvals, freezes, gc_tasks, manifests, runs, samples
from acr_gc.ledger.states import IllegalTransition, RunState

T0 = datetime(2024, 6, 10, tzinfo=timezone.utc)
END = T0 + timedelta(days=5)


@pytest.fixture
def path(tmp_path):
    return tmp_path / "ledger.db"


@pytest.fixture
def ledger(path):
    led = Ledger(f"sqlite:///{path}")
    yield led
    led.dispose()


def rows(path, query, *args):
    with sqlite3.connect(path) as connection:
        return connection.execute(query, args).fetchall()


def open_run(ledger, run_id="r1", *, instance="cri-demo", state=RunState.RUNNING, started=T0, out_dir="/tmp/out"):
    runs.open_run(ledger, run_id, instance_id=instance, bucket="b", region="cn-hangzhou", state=state,
                  started_at=started, flow_run_id=None, out_dir=out_dir, price_per_gb_month=0.12, currency="CNY")
    return run_id


# ---- runs ----------------------------------------------------------------------------------


def test_open_run_writes_the_row_with_the_state_name(ledger, path):
    open_run(ledger)
    assert rows(path, "select run_id, instance_id, state, out_dir, currency from runs") == [
        ("r1", "cri-demo", "RUNNING", "/tmp/out", "CNY")]
    assert runs.get_run(ledger, "r1").state == RunState.RUNNING
    assert runs.get_run(ledger, "nope") is None


def test_update_run_sets_fields_but_never_the_state(ledger, path):
    open_run(ledger)
    runs.update_run(ledger, "r1", charts=3, plan_json='{"a": 1}')
    assert rows(path, "select charts, plan_json, state from runs") == [(3, '{"a": 1}', "RUNNING")]
    with pytest.raises(ValueError, match="move_run"):
        runs.update_run(ledger, "r1", state="GC_DONE")
    assert rows(path, "select state from runs") == [("RUNNING",)]


def test_move_run_follows_the_transition_table(ledger, path):
    open_run(ledger)
    assert runs.move_run(ledger, "r1", RunState.GC_DONE, message=None, finished_at=T0) is RunState.GC_DONE
    assert rows(path, "select state from runs") == [("GC_DONE",)]
    with pytest.raises(IllegalTransition, match="GC_DONE → RUNNING"):
        runs.move_run(ledger, "r1", RunState.RUNNING)
    assert rows(path, "select state from runs") == [("GC_DONE",)]  # refused: nothing written
    with pytest.raises(LookupError, match="no run 'x'"):
        runs.move_run(ledger, "x", RunState.FAILED)


def _after_samples(ledger, run_id, *days):
    samples.add_sample(ledger, run_id, bucket="b", taken_at=T0 - timedelta(hours=1), storage_bytes=100,
                       object_count=10, phase="before")
    for day in days:
        samples.add_sample(ledger, run_id, bucket="b", taken_at=T0 + timedelta(days=day), storage_bytes=60,
                           object_count=6, phase="after")


def test_close_window_completes_a_gc_done_run_once_sampled_past_its_end(ledger, path):
    open_run(ledger)
    runs.move_run(ledger, "r1", RunState.GC_DONE, window_end=END, gc_started_at=T0)
    _after_samples(ledger, "r1", 1, 3)
    assert runs.close_window(ledger, "r1") is RunState.GC_DONE  # sampled up to day 3 of 5
    assert rows(path, "select state from runs") == [("GC_DONE",)]
    samples.add_sample(ledger, "r1", bucket="b", taken_at=END, storage_bytes=60, object_count=6, phase="after")
    assert runs.close_window(ledger, "r1", now=END - timedelta(seconds=1)) is RunState.GC_DONE  # the clock says no
    assert runs.close_window(ledger, "r1") is RunState.COMPLETE
    assert rows(path, "select state from runs") == [("COMPLETE",)]
    assert runs.close_window(ledger, "r1") is RunState.COMPLETE  # again: nothing to do


def test_close_window_leaves_other_states_alone(ledger, path):
    open_run(ledger)
    _after_samples(ledger, "r1", 6)
    runs.update_run(ledger, "r1", window_end=END)
    assert runs.close_window(ledger, "r1") is RunState.RUNNING
    runs.move_run(ledger, "r1", RunState.FAILED)
    assert runs.close_window(ledger, "r1") is RunState.FAILED
    assert rows(path, "select state from runs") == [("FAILED",)]


def test_listing_runs(ledger):
    open_run(ledger, "old", started=T0 - timedelta(days=30))
    open_run(ledger, "new", started=T0)
    open_run(ledger, "other", instance="cri-other", started=T0 + timedelta(days=1))
    open_run(ledger, "mid", started=T0 - timedelta(days=1))
    for run_id in ("old", "new", "other"):
        runs.move_run(ledger, run_id, RunState.GC_DONE)
    assert [r.run_id for r in runs.all_runs(ledger)] == ["old", "mid", "new", "other"]
    assert [r.run_id for r in runs.open_windows(ledger, "cri-demo")] == ["old", "new"]
    assert [r.run_id for r in runs.running_runs(ledger, "cri-demo", excluding="zzz")] == ["mid"]
    assert runs.running_runs(ledger, "cri-demo", excluding="mid") == []
    assert runs.latest_finished_run_id(ledger, "cri-demo") == "new"  # "mid" is still RUNNING
    assert runs.latest_finished_run_id(ledger, "nobody") is None


def test_close_dead_run_marks_it_failed_with_the_note(ledger, path):
    open_run(ledger)
    runs.close_dead_run(ledger, "r1", "interrupted")
    ((state, message, finished),) = rows(path, "select state, message, finished_at from runs")
    assert (state, message) == ("FAILED", "interrupted") and finished is not None


def test_record_savings_once_sets_the_flag_after_the_row(ledger, path):
    open_run(ledger)
    seen = []

    def append(run, frame):
        seen.append((run.run_id, len(frame)))
        return True

    assert runs.record_savings_once(ledger, "r1", append) is False  # RUNNING: no saving
    runs.move_run(ledger, "r1", RunState.GC_DONE)
    _after_samples(ledger, "r1", 1)
    assert runs.record_savings_once(ledger, "r1", lambda run, frame: False) is False  # nothing appended
    assert rows(path, "select savings_recorded from runs") == [(0,)]
    assert runs.record_savings_once(ledger, "r1", append) is True
    assert rows(path, "select savings_recorded from runs") == [(1,)]
    assert runs.record_savings_once(ledger, "r1", append) is False  # once
    assert seen == [("r1", 2)]


def test_an_error_while_appending_leaves_the_flag_unset(ledger, path):
    open_run(ledger, state=RunState.GC_DONE)

    def broken(run, frame):
        raise OSError("disk full")

    with pytest.raises(OSError):
        runs.record_savings_once(ledger, "r1", broken)
    assert rows(path, "select savings_recorded from runs") == [(0,)]


# ---- samples -------------------------------------------------------------------------------


def test_samples(ledger, path):
    open_run(ledger)
    assert samples.latest_sample_time(ledger, "r1") is None
    assert samples.baseline_of(ledger, "r1") is None
    _after_samples(ledger, "r1", 1, 2)
    samples.add_sample(ledger, "r1", bucket="b", taken_at=T0 + timedelta(days=9), storage_bytes=1, object_count=1,
                       phase="stale")
    assert samples.latest_sample_time(ledger, "r1") == T0 + timedelta(days=2)  # stale ones are out of the series
    frame = samples.samples_frame(ledger, "r1")
    assert list(frame["phase"]) == ["before", "after", "after", "stale"]
    assert str(frame["taken_at"].dt.tz) == "UTC" and list(frame["storage_bytes"]) == [100, 60, 60, 1]
    before = samples.baseline_of(ledger, "r1")
    assert (before.phase, before.storage_bytes, before.taken_at) == ("before", 100, T0 - timedelta(hours=1))
    open_run(ledger, "r2")
    copy = samples.copy_baseline(ledger, before, "r2")
    assert copy.run_id == "r2"
    assert rows(path, "select run_id, storage_bytes, object_count, phase from samples where run_id = 'r2'") == [
        ("r2", 100, 10, "before")]


# ---- GC tasks ------------------------------------------------------------------------------


def status(state, task_id="gc-1", tags=3):
    return GcStatus(task_id=task_id, state=state, progress=50, tags_deleted=tags, objects_deleted=7,
                    bytes_deleted=700)


def test_gc_tasks(ledger, path):
    open_run(ledger)
    row_id = gc_tasks.add_gc_task(ledger, run_id="r1", instance_id="cri-demo", driver="emulator", state="intent",
                                  client_token="tok")
    assert rows(path, "select id, run_id, state, client_token, task_id from gc_tasks") == [
        (row_id, "r1", "intent", "tok", None)]
    assert [t.id for t in gc_tasks.open_gc_tasks(ledger, "cri-demo")] == [row_id]
    gc_tasks.record_gc_status(ledger, row_id, status("RUNNING"))
    assert rows(path, "select task_id, state, tags_deleted, objects_deleted, bytes_deleted, finished_at "
                      "from gc_tasks") == [("gc-1", "RUNNING", 3, 7, 700, None)]
    gc_tasks.record_gc_status(ledger, row_id, status("SUCCESS", tags=5))
    ((state, tags, finished),) = rows(path, "select state, tags_deleted, finished_at from gc_tasks")
    assert (state, tags) == ("SUCCESS", 5) and finished is not None
    assert gc_tasks.open_gc_tasks(ledger, "cri-demo") == []
    second = gc_tasks.add_gc_task(ledger, run_id="r1", instance_id="cri-demo", driver="emulator", state="RUNNING",
                                  task_id="gc-2")
    assert gc_tasks.latest_gc_task(ledger, "r1").id == second
    assert gc_tasks.latest_gc_task(ledger, "nope") is None
    gc_tasks.record_gc_seen_ended(ledger, second, status("CANCELED", task_id="gc-2", tags=2))
    ((state, tags, objects, finished),) = rows(
        path, "select state, tags_deleted, objects_deleted, finished_at from gc_tasks where id = ?", second)
    assert (state, tags, objects) == ("CANCELED", 2, 0) and finished is not None


# ---- freezes -------------------------------------------------------------------------------


def test_freezes(ledger, path):
    open_run(ledger)
    original = {"Version": "1", "Statement": []}
    record = freezes.record_freeze_intent(ledger, "r1", "b", "AcrGcFreezeR1", original)
    assert rows(path, "select run_id, bucket, sid, had_policy, original_policy, status from freezes") == [
        ("r1", "b", "AcrGcFreezeR1", 1, json.dumps(original), "intent")]
    assert [f.id for f in freezes.outstanding_freezes(ledger, "b")] == [record.id]
    freezes.mark_freeze_applied(ledger, record.id)
    assert rows(path, "select status from freezes") == [("applied",)]
    freezes.mark_freeze_undone(ledger, record.id, "restored_partial", "changed meanwhile")
    ((state, restored, note),) = rows(path, "select status, restored_at, note from freezes")
    assert (state, note) == ("restored_partial", "changed meanwhile") and restored is not None
    assert freezes.outstanding_freezes(ledger, "b") == []
    none = freezes.record_freeze_intent(ledger, "r1", "b", "AcrGcFreezeR2", None)
    assert rows(path, "select had_policy, original_policy from freezes where id = ?", none.id) == [(0, None)]


# ---- approvals -----------------------------------------------------------------------------


def test_approvals(ledger, path):
    open_run(ledger)
    assert approvals.approval_of(ledger, "r1") is None
    approvals.record_approval(ledger, "r1", asked_at=T0, answered_at=T0 + timedelta(minutes=1), approved=True,
                              answered_by="alice", reason="ok", via="terminal")
    assert rows(path, "select run_id, approved, answered_by, reason, via from approvals") == [
        ("r1", 1, "alice", "ok", "terminal")]
    approvals.record_approval(ledger, "r1", asked_at=T0, answered_at=T0, approved=False, answered_by="bob",
                              reason="no", via="prefect")  # the latest answer stands
    answer = approvals.approval_of(ledger, "r1")
    assert (answer.approved, answer.answered_by, answer.via) == (False, "bob", "prefect")


# ---- an existing ledger still opens ---------------------------------------------------------


def test_manifest_cache_adds_new_digests_and_leaves_cached_ones_as_they_were(ledger, path):
    first = [Manifest(f"sha256:{i:064x}", "application/vnd.oci.image.manifest.v1+json", 100 + i,
                      ((f"sha256:{i + 1000:064x}", 10),), ()) for i in range(700)]  # > one IN (...) chunk
    manifests.save_manifests(ledger, first)
    changed = Manifest(first[3].digest, "application/other", 1, (), ())  # a digest's content cannot change
    index = Manifest("sha256:" + "f" * 64, "application/vnd.oci.image.index.v1+json", 50, (),
                     (first[0].digest, first[1].digest))
    manifests.save_manifests(ledger, [changed, index, index])
    assert rows(path, "select count(*) from manifest_cache") == [(701,)]
    assert rows(path, "select media_type, size from manifest_cache where digest = ?", first[3].digest) == [
        ("application/vnd.oci.image.manifest.v1+json", 103)]
    assert json.loads(rows(path, "select refs_json from manifest_cache where digest = ?", index.digest)[0][0]) == {
        "blobs": [], "children": [first[0].digest, first[1].digest]}
    loaded = manifests.load_manifests(ledger, [first[699].digest, index.digest, "sha256:" + "0" * 63 + "x"])
    assert loaded == {first[699].digest: first[699], index.digest: index}


def test_a_ledger_written_before_still_opens_and_reads(ledger, path):
    """No migration: the on-disk schema is the one the models always made."""
    open_run(ledger, state=RunState.GC_DONE)
    ledger.dispose()
    again = Ledger(f"sqlite:///{path}")
    try:
        assert runs.get_run(again, "r1").state is RunState.GC_DONE  # read back as the enum
    finally:
        again.dispose()
