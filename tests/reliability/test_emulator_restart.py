"""The emulator restarted mid-run, its state kept through its admin dump/restore: the run rides over it.

While a real ``reclaim_storage`` run (in this process, on the session's Prefect server)
watches a RUNNING GC task, the emulator's state is dumped, the emulator process is
SIGKILLed and a new one is started from the dump on the same ports. For that downtime
every call of the run meets refused or reset connections; its retries (``api.retries``,
the tenacity backoff of acr_gc/cloud/calls.py) must carry it to the restored emulator,
where the GC task goes on from where it was. The run must end GC_DONE with exactly one
GC task, the hand-worked retained set, the original bucket policy back (JSON-equal), and
summary.json storage figures equal to the emulator's ground truth.

Dataset: cri-run of tests/pipeline/pipeline_support.py (7 expired tags; the retained set
RUN_RETAINED is worked out there). Freed by GC, by hand: the manifests W3, W5, A1, A2, B1
(W1 and B2 live on in main and stable) 5 x 1024 B, their own layers 300 + 500 + 1100 +
1200 + 2100 B, and 7 tag links x 71 B = 10 817 B, which stay billed as noncurrent
versions in the versioned bucket until its 3-day rule releases them.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pipeline"))
from pipeline_support import OTHER_POLICY, RUN_RETAINED, config_dict, dataset, run_flow, summary_of  # noqa: E402

from acr_gc.cloud import calls  # noqa: E402
from acr_gc.emulator.process import EmulatorProcess  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

INSTANCE, BUCKET = "cri-run", "cri-run-storage"
GC_RATE = 2.0  # tags per second: 7 tags take 3.5 s, long enough to restart the emulator under it
FREED_BYTES = 5 * 1024 + (300 + 500 + 1100 + 1200 + 2100) + 7 * 71


class Restarter(threading.Thread):
    """Once the GC task is RUNNING with 2 tags deleted: dump, SIGKILL, start again from the dump."""

    def __init__(self, emu: EmulatorProcess, dump_path: Path):
        super().__init__(daemon=True)
        self.emu, self.dump_path = emu, dump_path
        self.restarted: EmulatorProcess | None = None
        self.dumped: dict | None = None
        self.downtime_s: float | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                tasks = self.emu.truth()["instances"][INSTANCE]["gc_tasks"]
                if tasks and tasks[0]["state"] == "RUNNING" and tasks[0]["tags_deleted"] >= 2:
                    break
                time.sleep(0.02)
            self.dumped = self.emu.dump()
            self.dump_path.write_text(json.dumps(self.dumped), encoding="utf-8")
            down = time.monotonic()
            self.emu.proc.kill()
            self.emu.proc.wait(10)
            self.emu.stop()
            self.restarted = EmulatorProcess(restore=self.dump_path, acr_port=self.emu.acr_port,
                                             oss_port=self.emu.oss_port, gc_tags_per_second=GC_RATE).start()
            self.downtime_s = time.monotonic() - down
        except BaseException as exc:  # handed to the test, which fails on it
            self.error = exc


def test_run_rides_over_an_emulator_restart_mid_gc(prefect_api_url, tmp_path, monkeypatch):
    first = EmulatorProcess(dataset(run_policy=OTHER_POLICY), gc_tags_per_second=GC_RATE).start()
    restarter = Restarter(first, tmp_path / "dump.json")
    try:
        before = first.truth()["buckets"][BUCKET]
        assert (before["policy"], before["noncurrent_bytes"]) == (OTHER_POLICY, 0)
        config = config_dict((first.acr_endpoint, first.oss_endpoint), tmp_path, INSTANCE, BUCKET)
        assert config["api"]["retries"] == 6  # the default: what a production run has
        calls.reset_stats()
        restarter.start()
        state, folder = run_flow(config, monkeypatch)
        restarter.join(30)
        assert restarter.error is None, repr(restarter.error)
        assert restarter.restarted is not None, "the emulator was not restarted"
        print(f"emulator down for {restarter.downtime_s:.2f} s (SIGKILL to the new process listening); "
              f"retried call failures by kind: {calls.stats().by_kind}")

        # the restart really happened under a RUNNING GC task
        [dumped_task] = restarter.dumped["gc_tasks"][INSTANCE]
        assert dumped_task["state"] == "RUNNING" and 2 <= dumped_task["tags_deleted"] < 7
        assert not first.alive
        retried = calls.stats().by_kind
        assert retried.get("network", 0) >= 1, f"no call met the downtime: {retried}"  # the retries rode over it
        assert state.is_completed(), state.message
        summary = summary_of(folder)
        assert summary["state"] in ("GC_DONE", "COMPLETE")

        truth = restarter.restarted.truth()
        # the run went on talking to the new process
        assert truth["request_counts"]["acr"] > restarter.dumped["faults"]["request_counts"]["acr"]
        [task] = truth["instances"][INSTANCE]["gc_tasks"]  # exactly one: never started twice
        assert (task["task_id"], task["state"], task["tags_deleted"]) == (dumped_task["task_id"], "SUCCESS", 7)
        assert summary["gc"]["task_id"] == task["task_id"] and summary["gc"]["tags_deleted"] == 7
        assert truth["instances"][INSTANCE]["tags"] == RUN_RETAINED
        after = truth["buckets"][BUCKET]
        assert after["policy"] == OTHER_POLICY  # the freeze undone: the original, JSON-equal
        checks = dict(summary["checks"])
        assert "any-retains/count-or-match/full" in checks.pop("readings_consistent")  # issue 11
        assert checks == {"unexpected_deletions": 0, "missed_deletions": 0, "freeze_restored": True}
        assert (after["live_bytes"], after["noncurrent_bytes"]) == (before["live_bytes"] - FREED_BYTES, FREED_BYTES)
        storage = summary["storage"]
        assert (storage["before_bytes"], storage["after_bytes"]) == (before["storage_bytes"], after["storage_bytes"])
    finally:
        restarter.join(30)
        first.stop()
        if restarter.restarted is not None:
            restarter.restarted.stop()
