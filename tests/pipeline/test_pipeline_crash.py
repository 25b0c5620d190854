"""Crash safety of `acr-gc run` (issue 4): the run process is SIGKILLed while GC runs.

Real parts only: the emulator as a subprocess (GC slowed to GC_RATE tags/s so a run can
be killed part-way), `acr-gc run` / `acr-gc thaw` as subprocesses in their own process
groups (real SDKs, credential chain from env vars), one real Prefect server for the
module. SIGKILL leaves no chance to any hook, `except` or `finally`: whatever is undone
afterwards is undone from the ledger alone.

The dataset (tests/pipeline/crash_support.py, worked out by hand there): 40 expired
tags (apps/api a00-a19, apps/web b00-b19), retained apps/api {a20, a21, a22, v2},
apps/web {b20, b21, b22, v1}, keep/tools {t1, t2}. The bucket's policy has one other
statement (AllowCiRead), or none in the no-policy variant.

A background recorder samples the emulator's truth every 0.25 s for the whole test: the
set of GC task ids ever seen and the sequence of distinct bucket policies.
"""

from __future__ import annotations

import csv
import json
import signal
import sqlite3
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import crash_support as cs  # noqa: E402

from acr_gc.emulator.process import EmulatorProcess  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

GC_RATE = 1.25  # tags per second: the 40 expired tags take 32 s, room to kill, thaw and re-run


@pytest.fixture(scope="module")
def prefect_server():
    server = cs.PrefectServer()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def children(tmp_path):
    started = cs.Children(tmp_path)
    yield started
    started.stop_all()


def _emulator(policy):
    return EmulatorProcess(cs.dataset(policy), gc_tags_per_second=GC_RATE)


def _same_json(a, b) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def _frozen_form(policy: dict | None, sid: str) -> dict:
    """What a freeze of ``sid`` over ``policy`` looks like: the original statements untouched
    and in order, then exactly one Deny statement named ``sid``."""
    assert policy is not None
    statements = policy["Statement"]
    assert cs.freeze_sids(policy) == [sid], policy
    ours = statements[-1]
    assert ours["Sid"] == sid and ours["Effect"] == "Deny", ours
    assert f"acs:oss:*:*:{cs.BUCKET}/*" in ours["Resource"], ours
    return {**policy, "Statement": statements[:-1]}  # what is left without our statement


def _start_run(children, config, env) -> cs.Child:
    return children.start("run", cs.acr_gc_args("run", "--config", str(config)), env)


def _kill_during_gc(emu, run: cs.Child) -> dict:
    """Wait for GC RUNNING under a freeze, SIGKILL the run's whole process group, and
    return the truth right after: the GC task still running, the freeze still on."""
    cs.wait_for("the GC task RUNNING and the freeze statement on the bucket",
                cs.gc_running_and_frozen(emu), 90, emu, run)
    run.kill_group(signal.SIGKILL)
    rc = run.wait(15)
    assert rc == -signal.SIGKILL, f"run exited {rc} before the kill\n{cs.diagnostics(emu, run)}"
    truth = emu.truth()
    tasks = cs.gc_tasks(truth)
    assert [t["state"] for t in tasks] == ["RUNNING"], f"after SIGKILL the GC task should run on: {tasks}"
    assert tasks[0]["tags_deleted"] < len(cs.EXPIRED), tasks
    assert len(cs.freeze_sids(cs.bucket_policy(truth))) == 1, "the killed run's freeze must still be on"
    return truth


def _thaw(children, config, env, emu, *extra: str, rc_expected: int = 0) -> cs.Child:
    thaw = children.start("thaw", cs.acr_gc_args("thaw", "--config", str(config), *extra), env)
    try:
        rc = thaw.wait(90)
    except Exception:
        raise AssertionError(f"acr-gc thaw did not end within 90 s\n{cs.diagnostics(emu, thaw)}") from None
    assert rc == rc_expected, f"acr-gc thaw exited {rc}\n{cs.diagnostics(emu, thaw)}"
    return thaw


def _finish(run: cs.Child, emu, timeout: float = 150) -> int:
    try:
        return run.wait(timeout)
    except Exception:
        raise AssertionError(f"acr-gc run did not end within {timeout} s\n{cs.diagnostics(emu, run)}") from None


def _assert_gc_complete_and_retained(truth: dict, task_id: str) -> None:
    tasks = cs.gc_tasks(truth)
    assert [(t["task_id"], t["state"]) for t in tasks] == [(task_id, "SUCCESS")], tasks
    assert tasks[0]["tags_deleted"] == len(cs.EXPIRED), tasks
    assert truth["instances"][cs.INSTANCE]["tags"] == cs.RETAINED


def test_killed_run_then_thaw_restores_policy_and_a_new_run_attaches(prefect_server, children, tmp_path):
    with _emulator(cs.ORIGINAL_POLICY) as emu:
        config = cs.write_config(tmp_path / "config.yaml", emu, tmp_path)
        env = cs.base_env(prefect_server.home, prefect_server.api_url)
        with cs.TruthRecorder(emu) as seen:
            # GC paused (emulator pace 0) until the refused thaw has been checked: the task is
            # RUNNING when thaw asks however slowly thaw starts on a busy machine
            emu.set_faults(gc_tags_per_second=0)
            first = _start_run(children, config, env)
            killed = _kill_during_gc(emu, first)
            task_id = cs.gc_tasks(killed)[0]["task_id"]
            first_sid = cs.freeze_sids(cs.bucket_policy(killed))[0]
            assert _same_json(_frozen_form(cs.bucket_policy(killed), first_sid), cs.ORIGINAL_POLICY)

            # Issue 12: while the killed run's GC task still runs, thaw refuses (exit 3) and the
            # bucket stays frozen; once the task has ended, thaw restores the original.
            refused = _thaw(children, config, env, emu, rc_expected=3)
            assert f"GC task {task_id} is RUNNING" in refused.output(), refused.output()
            truth = emu.truth()
            assert cs.freeze_sids(cs.bucket_policy(truth)) == [first_sid]
            assert [t["state"] for t in cs.gc_tasks(truth)] == ["RUNNING"], "the refused thaw must not stop GC"
            # GC goes on, briskly: nothing below needs it slow, and the test's time limit is
            # for the processes, not for 32 s of GC at GC_RATE after the thaw
            emu.set_faults(gc_tags_per_second=40)
            cs.wait_for("the killed run's GC task to end",
                        lambda: cs.gc_tasks(emu.truth())[0]["state"] == "SUCCESS", 90, emu)
            thaw = _thaw(children, config, env, emu)
            assert "1 freeze(s) undone" in thaw.output(), thaw.output()
            truth = emu.truth()
            assert _same_json(cs.bucket_policy(truth), cs.ORIGINAL_POLICY), cs.bucket_policy(truth)
            assert [status for _, _, status in cs.ledger_freezes(tmp_path)] == ["restored"]

            second = _start_run(children, config, env)
            rc = _finish(second, emu)
        out = second.output()
        assert rc == 0, f"the second run exited {rc}\n{cs.diagnostics(emu, second)}"
        assert "state: GC_DONE" in out, out

        truth = emu.truth()
        assert not seen.errors, seen.errors
        assert seen.task_ids == {task_id}, (
            f"GC tasks seen over the test: {seen.task_ids} (one expected: the second run takes over the killed "
            f"run's task, even one that ended meanwhile)\n{cs.diagnostics(emu, second)}")
        _assert_gc_complete_and_retained(truth, task_id)
        assert _same_json(cs.bucket_policy(truth), cs.ORIGINAL_POLICY), cs.bucket_policy(truth)

        summary = cs.read_summary(tmp_path, out)
        assert summary["state"] == "GC_DONE"
        assert summary["gc"]["task_id"] == task_id and summary["gc"]["state"] == "SUCCESS", summary["gc"]
        assert summary["checks"]["unexpected_deletions"] == 0, summary["checks"]
        assert summary["checks"]["missed_deletions"] == 0, summary["checks"]
        assert summary["checks"]["freeze_restored"] is True, summary["checks"]

        # The policy went original -> frozen by run 1 -> original (thaw, once GC had ended); the
        # second run took over a task that had ended, so it froze nothing.
        freezes = cs.ledger_freezes(tmp_path)
        assert [status for _, _, status in freezes] == ["restored"], freezes
        assert len(seen.policies) == 3, json.dumps(seen.policies, indent=1)
        assert _same_json(seen.policies[0], cs.ORIGINAL_POLICY)
        assert _same_json(_frozen_form(seen.policies[1], first_sid), cs.ORIGINAL_POLICY)
        assert _same_json(seen.policies[2], cs.ORIGINAL_POLICY), seen.policies[2]


def test_killed_run_then_thaw_without_a_policy_leaves_none(prefect_server, children, tmp_path):
    with _emulator(None) as emu:
        config = cs.write_config(tmp_path / "config.yaml", emu, tmp_path)
        env = cs.base_env(prefect_server.home, prefect_server.api_url)
        run = _start_run(children, config, env)
        killed = _kill_during_gc(emu, run)
        frozen = cs.bucket_policy(killed)
        sid = cs.freeze_sids(frozen)[0]
        assert _frozen_form(frozen, sid)["Statement"] == [], "no policy before: only our statement"

        _thaw(children, config, env, emu, "--force")  # the operator's override while GC may still run
        assert cs.bucket_policy(emu.truth()) is None

        again = _thaw(children, config, env, emu, "--force")  # harmless a second time
        assert "nothing to thaw" in again.output(), again.output()
        truth = emu.truth()
        assert cs.bucket_policy(truth) is None
        assert [t["state"] for t in cs.gc_tasks(truth)] in (["RUNNING"], ["SUCCESS"])


def test_new_run_after_a_kill_reuses_the_freeze_instead_of_stacking(prefect_server, children, tmp_path):
    with _emulator(cs.ORIGINAL_POLICY) as emu:
        config = cs.write_config(tmp_path / "config.yaml", emu, tmp_path)
        env = cs.base_env(prefect_server.home, prefect_server.api_url)
        with cs.TruthRecorder(emu) as seen:
            first = _start_run(children, config, env)
            killed = _kill_during_gc(emu, first)
            task_id = cs.gc_tasks(killed)[0]["task_id"]
            sid = cs.freeze_sids(cs.bucket_policy(killed))[0]

            second = _start_run(children, config, env)  # no `acr-gc thaw` first
            rc = _finish(second, emu)
        out = second.output()
        assert rc == 0, f"the second run exited {rc}\n{cs.diagnostics(emu, second)}"

        truth = emu.truth()
        assert not seen.errors, seen.errors
        assert seen.task_ids == {task_id}, (
            f"GC tasks seen over the test: {seen.task_ids} (one expected: the second run takes over the killed "
            f"run's task, even one that ended meanwhile)\n{cs.diagnostics(emu, second)}")
        _assert_gc_complete_and_retained(truth, task_id)
        assert _same_json(cs.bucket_policy(truth), cs.ORIGINAL_POLICY), cs.bucket_policy(truth)

        # One freeze in the ledger (the killed run's, adopted by the second run and undone by
        # it), and the policy went original -> frozen (one statement, the killed run's Sid,
        # all through the second run) -> original: never stacked, never a second statement.
        freezes = cs.ledger_freezes(tmp_path)
        assert [(s, status) for _, s, status in freezes] == [(sid, "restored")], freezes
        assert len(seen.policies) == 3, json.dumps(seen.policies, indent=1)
        assert _same_json(seen.policies[0], cs.ORIGINAL_POLICY)
        assert _same_json(_frozen_form(seen.policies[1], sid), cs.ORIGINAL_POLICY)
        assert _same_json(seen.policies[2], cs.ORIGINAL_POLICY)

        summary = cs.read_summary(tmp_path, out)
        assert summary["state"] == "GC_DONE" and summary["gc"]["task_id"] == task_id, summary
        assert summary["checks"]["unexpected_deletions"] == 0 and summary["checks"]["missed_deletions"] == 0


def _planned_expired(workdir: Path, run_id: str) -> set[str]:
    """The expired tags of ``run_id``'s plan as the ledger's run_plans table keeps it (gzip JSON)."""
    import gzip

    with sqlite3.connect(workdir / "ledger.db") as db:
        rows = db.execute("SELECT tags_json_gz FROM run_plans WHERE run_id = ?", (run_id,)).fetchall()
    if not rows:
        return set()
    plan = json.loads(gzip.decompress(rows[0][0]))
    col = {name: i for i, name in enumerate(plan["columns"])}
    return {f"{r[col['namespace']]}/{r[col['repo']]}:{r[col['tag']]}" for r in plan["data"] if r[col["expired"]]}


def test_killed_run_with_an_intent_only_gc_start_is_planned_afresh_after_a_rule_change(prefect_server, children,
                                                                                       tmp_path):
    """Issue 11, item 6. The run is killed while its GC start is held (the ledger has the intent,
    no task id; the emulator never created a task); the rule then changes to keep 2 instead of
    3, so a20 and b20 expire too. The next run must not start GC from the killed run's plan: it
    plans afresh (its own plan in run_plans, with a20 and b20), gates it, and runs ONE GC task
    that deletes exactly the 42 tags of the new plan (an inherited plan would have called a20
    and b20 unexpected deletions, after GC had deleted them ungated)."""
    with EmulatorProcess(cs.dataset(cs.ORIGINAL_POLICY), gc_tags_per_second=40.0) as emu:
        config = cs.write_config(tmp_path / "config.yaml", emu, tmp_path)
        env = cs.base_env(prefect_server.home, prefect_server.api_url)
        with cs.TruthRecorder(emu) as seen:
            emu.set_faults(hold={"action": "CreateGarbageCollectionTask", "skip": 0})
            first = _start_run(children, config, env)
            cs.wait_for("the GC start held", lambda: emu.truth()["faults"]["held"] >= 1, 120, emu, first)
            first.kill_group(signal.SIGKILL)
            assert first.wait(15) == -signal.SIGKILL, cs.diagnostics(emu, first)
            emu.set_faults(hold=None)  # the killed run's request is dropped, never answered
            with sqlite3.connect(tmp_path / "ledger.db") as db:
                assert db.execute("SELECT task_id, state FROM gc_tasks").fetchall() == [(None, "intent")]
                [(first_run,)] = db.execute("SELECT run_id FROM runs").fetchall()
            assert cs.gc_tasks(emu.truth()) == []

            doc = emu.dump()  # an operator edits the rule afterwards: keep 2
            [inst] = [i for i in doc["registry"]["instances"] if i["instance_id"] == cs.INSTANCE]
            inst["lifecycle_rules"][0]["retention_tag_count"] = 2
            emu.restore(doc)

            second = _start_run(children, config, env)  # no thaw first: it adopts the killed run's freeze
            rc = _finish(second, emu)
        out = second.output()
        assert rc == 0, f"the second run exited {rc}\n{cs.diagnostics(emu, second)}"

        newly = {"apps/api:a20", "apps/web:b20"}
        old_plan = {f"{ns}/{repo}:{t}" for ns, repo, t in cs.EXPIRED}
        truth = emu.truth()
        assert not seen.errors, seen.errors
        assert len(seen.task_ids) == 1 and [t["state"] for t in cs.gc_tasks(truth)] == ["SUCCESS"], seen.task_ids
        retained = {name: [t for t in tags if f"{name}:{t}" not in newly] for name, tags in cs.RETAINED.items()}
        assert truth["instances"][cs.INSTANCE]["tags"] == retained
        assert _same_json(cs.bucket_policy(truth), cs.ORIGINAL_POLICY), cs.bucket_policy(truth)

        summary = cs.read_summary(tmp_path, out)
        second_run = summary["run_id"]
        assert summary["state"] == "GC_DONE", summary
        assert summary["checks"]["unexpected_deletions"] == 0 and summary["checks"]["missed_deletions"] == 0
        assert summary["plan"]["tags_expired"] == len(old_plan | newly)
        # a new plan in the ledger, the gate over it: deleted_tags.csv names how to regenerate a20 and b20
        assert _planned_expired(tmp_path, first_run) == old_plan
        assert _planned_expired(tmp_path, second_run) == old_plan | newly
        folder = Path(out.strip().splitlines()[-1])
        with open(folder / "deleted_tags.csv", newline="", encoding="utf-8") as handle:
            gated = {f"{r['namespace']}/{r['repo']}:{r['tag']}": r["regenerable_by"] for r in csv.DictReader(handle)}
        assert set(gated) == old_plan | newly and {gated[key] for key in newly} == {"build-rule"}
        with sqlite3.connect(tmp_path / "ledger.db") as db:
            states = db.execute("SELECT run_id, state, message FROM runs ORDER BY started_at").fetchall()
        assert [(r, s) for r, s, _ in states] == [(first_run, "FAILED"), (second_run, "GC_DONE")], states
        assert "before its GC started" in states[0][2], states[0]


def test_killed_run_whose_gc_start_was_answered_but_not_recorded_is_taken_over_after_the_task_ended(
        prefect_server, children, tmp_path):
    """The moment between the two halves of a GC start: the emulator started the task (the
    create was answered), the run is killed before the ledger has its id (held: the first
    GetGarbageCollectionTask, which the start sends right after the create). The ledger has
    only the intent, with the client token the task was started with. The task then runs to
    its end before the next run starts (a slow machine, an operator who thaws first): the
    next run must still take that task over — found by the start's client token, whatever
    its state — and not plan afresh and start a second GC over a registry GC already cleaned
    (DESIGN section 2: never doubled; its baseline would be the after-GC storage)."""
    with EmulatorProcess(cs.dataset(cs.ORIGINAL_POLICY), gc_tags_per_second=40.0) as emu:
        storage_before = emu.truth()["buckets"][cs.BUCKET]["storage_bytes"]
        config = cs.write_config(tmp_path / "config.yaml", emu, tmp_path)
        env = cs.base_env(prefect_server.home, prefect_server.api_url)
        with cs.TruthRecorder(emu) as seen:
            emu.set_faults(hold={"action": "GetGarbageCollectionTask", "skip": 0})
            first = _start_run(children, config, env)
            cs.wait_for("the GC start answered and the task's first status held",
                        lambda: emu.truth()["faults"]["held"] >= 1, 120, emu, first)
            first.kill_group(signal.SIGKILL)
            assert first.wait(15) == -signal.SIGKILL, cs.diagnostics(emu, first)
            emu.set_faults(hold=None)
            with sqlite3.connect(tmp_path / "ledger.db") as db:
                assert db.execute("SELECT task_id, state FROM gc_tasks").fetchall() == [(None, "intent")]
                [(first_run,)] = db.execute("SELECT run_id FROM runs").fetchall()
            [task] = cs.gc_tasks(emu.truth())
            task_id = task["task_id"]
            cs.wait_for("the killed run's GC task to end",
                        lambda: cs.gc_tasks(emu.truth())[0]["state"] == "SUCCESS", 90, emu)

            thaw = _thaw(children, config, env, emu)  # GC has ended: thaw gives the policy back
            assert "1 freeze(s) undone" in thaw.output(), thaw.output()
            second = _start_run(children, config, env)
            rc = _finish(second, emu)
        out = second.output()
        assert rc == 0, f"the second run exited {rc}\n{cs.diagnostics(emu, second)}"

        truth = emu.truth()
        assert not seen.errors, seen.errors
        assert seen.task_ids == {task_id}, f"GC tasks seen over the test: {seen.task_ids}\n{cs.diagnostics(emu, second)}"
        _assert_gc_complete_and_retained(truth, task_id)
        assert _same_json(cs.bucket_policy(truth), cs.ORIGINAL_POLICY), cs.bucket_policy(truth)

        summary = cs.read_summary(tmp_path, out)
        assert summary["state"] == "GC_DONE" and summary["gc"]["task_id"] == task_id, summary
        assert summary["checks"]["unexpected_deletions"] == 0 and summary["checks"]["missed_deletions"] == 0
        assert summary["storage"]["before_bytes"] == storage_before, summary["storage"]
        with sqlite3.connect(tmp_path / "ledger.db") as db:
            states = db.execute("SELECT run_id, state, message FROM runs ORDER BY started_at").fetchall()
        assert [(r, s) for r, s, _ in states][0] == (first_run, "FAILED"), states
        assert f"took over its GC task {task_id}" in states[0][2], states[0]
