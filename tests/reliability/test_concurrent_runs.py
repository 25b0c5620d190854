"""Two runs of one instance started together: exactly one proceeds, the other stops
before any change with a message naming the first; nothing is stacked, and `acr-gc thaw`
will not pull the freeze from under the live run.

Real parts: the emulator (GC slowed so the runs overlap), two `acr-gc run`
processes started at the same moment, `acr-gc thaw` as a process, the session's Prefect
server. The dataset is the hand-worked one of tests/pipeline/crash_support.py (40 expired
tags, the retained set written out there); a background recorder keeps every GC task id
and every distinct bucket policy the emulator showed during the test.
"""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pipeline"))
import crash_support as cs  # noqa: E402

from emulator_kit import new_emulator  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

GC_RATE = 4.0  # tags per second once resumed: the runs overlap (GC is paused over the thaw attempt)


def _same_json(a, b) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


@pytest.fixture
def children(tmp_path):
    started = cs.Children(tmp_path)
    yield started
    started.stop_all()


def test_two_runs_started_together_one_proceeds_the_other_stops_clearly(prefect_api_url, children, tmp_path):
    with new_emulator(cs.dataset(cs.ORIGINAL_POLICY), gc_tags_per_second=GC_RATE) as emu:
        config = cs.write_config(tmp_path / "config.yaml", emu, tmp_path)
        env = cs.base_env(tmp_path / "prefect-home", prefect_api_url)
        with cs.TruthRecorder(emu) as seen:
            # GC paused (emulator pace 0) until the thaw attempt has been checked: the winner's
            # task is RUNNING, and the winner alive, however slowly thaw starts on a busy machine
            emu.set_faults(gc_tags_per_second=0)
            runs = [children.start(f"run{i}", cs.acr_gc_args("run", "--config", str(config)), env) for i in (1, 2)]
            cs.wait_for("a GC task RUNNING under the freeze", cs.gc_running_and_frozen(emu), 120, emu, *runs)

            thaw = children.start("thaw", cs.acr_gc_args("thaw", "--config", str(config)), env)
            assert thaw.wait(90) == 3, thaw.output()
            assert "not thawed: run " in thaw.output() and "still running" in thaw.output(), thaw.output()
            truth = emu.truth()
            assert [t["state"] for t in cs.gc_tasks(truth)] == ["RUNNING"], "the thaw attempt must not stop GC"
            assert len(cs.freeze_sids(cs.bucket_policy(truth))) == 1, "a refused thaw leaves the freeze on"
            emu.set_faults(gc_tags_per_second=None)  # GC goes on at GC_RATE

            codes = [run.wait(150) for run in runs]
        assert sorted(codes) == [0, 3], [(c, r.output()) for c, r in zip(codes, runs)]
        winner, loser = (runs[0], runs[1]) if codes[0] == 0 else (runs[1], runs[0])
        assert "state: GC_DONE" in winner.output(), winner.output()
        first_line = next(line for line in loser.output().splitlines() if line.startswith("state: "))
        assert first_line.startswith("state: BLOCKED — instance cri-crash is being reclaimed by run "), loser.output()
        assert "wait for that run to finish" in first_line

        truth = emu.truth()
        assert not seen.errors, seen.errors
        assert len(seen.task_ids) == 1, seen.task_ids  # one GC task over the whole test
        assert [t["state"] for t in cs.gc_tasks(truth)] == ["SUCCESS"]
        assert truth["instances"][cs.INSTANCE]["tags"] == cs.RETAINED
        # original → frozen by the winner (one statement) → original: never stacked
        assert len(seen.policies) == 3, json.dumps(seen.policies, indent=1)
        assert _same_json(seen.policies[0], cs.ORIGINAL_POLICY) and _same_json(seen.policies[2], cs.ORIGINAL_POLICY)
        assert len(cs.freeze_sids(seen.policies[1])) == 1

        winner_summary = cs.read_summary(tmp_path, winner.output())
        loser_summary = cs.read_summary(tmp_path, loser.output())
        assert winner_summary["state"] == "GC_DONE" and winner_summary["checks"]["freeze_restored"] is True
        assert loser_summary["state"] == "BLOCKED" and loser_summary["gc"]["task_id"] is None, loser_summary
        assert winner_summary["run_id"] in first_line
        with sqlite3.connect(tmp_path / "ledger.db") as db:
            freezes = db.execute("SELECT run_id, status FROM freezes").fetchall()
            states = dict(db.execute("SELECT run_id, state FROM runs").fetchall())
            locks = db.execute("SELECT * FROM instance_locks").fetchall()
        assert freezes == [(winner_summary["run_id"], "restored")], freezes
        assert states == {winner_summary["run_id"]: "GC_DONE", loser_summary["run_id"]: "BLOCKED"}, states
        assert locks == [], "the winner released the instance"
