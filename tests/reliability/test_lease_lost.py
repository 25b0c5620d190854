"""A run whose instance lock was taken over stops before its next change in the cloud
(issue 14 item 6): the lease is confirmed right before the freeze, the GC start and the
thaw, and once another run holds the instance the freeze and GC are that run's.

Real parts: the session emulator (the ``hold`` fault keeps the run waiting at one call
while the lock is taken over, as a run on another host that judged this one dead would),
the real SDKs, ``reclaim_storage`` on the session's Prefect server in a thread of this
process; the ledger's lock row is rewritten the way a takeover rewrites it.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pipeline"))
from pipeline_support import config_dict, dataset, ledger_rows, run_flow, summary_of  # noqa: E402

from acr_gc.ledger import InstanceLock, Ledger  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

INSTANCE, BUCKET = "cri-frz", "cri-frz-storage"


def _steal(url: str) -> None:
    ledger = Ledger(url)
    try:
        with ledger.session() as session:
            row = session.get(InstanceLock, INSTANCE)
            row.token, row.run_id, row.host, row.pid = "thief-token", "run-thief", "another-host", 1
    finally:
        ledger.dispose()


@pytest.mark.parametrize(("held_at", "frozen_by_then"), [
    ("GetBucketStat", False),  # the baseline sample: the next change is the freeze
    ("PutBucketPolicy", True),  # the freeze itself: the next change is the GC start
])
def test_a_run_whose_lease_was_taken_stops_before_its_next_cloud_change(emulator, prefect_api_url, tmp_path,
                                                                         monkeypatch, held_at, frozen_by_then):
    emulator.load(dataset())
    config = config_dict((emulator.acr_endpoint, emulator.oss_endpoint), tmp_path, INSTANCE, BUCKET)
    emulator.set_faults(hold={"action": held_at, "skip": 0})
    outcome: dict = {}
    runner = threading.Thread(target=lambda: outcome.update(zip(("state", "folder"), run_flow(config, monkeypatch))))
    runner.start()
    try:
        deadline = time.monotonic() + 120
        while emulator.set_faults()["held"] < 1:
            assert runner.is_alive() and time.monotonic() < deadline, f"the run never reached {held_at}"
            time.sleep(0.2)
        _steal(config["ledger"]["url"])
    finally:
        emulator.set_faults(hold=None)
        runner.join(180)
    assert not runner.is_alive()

    state, folder = outcome["state"], outcome["folder"]
    assert state.is_failed(), state
    summary = summary_of(folder)
    assert summary["state"] == "FAILED"
    stopped_before = "the start of GC" if frozen_by_then else f"the freeze of bucket {BUCKET}"
    run = ledger_rows(config, folder.name)["run"]
    assert "another run took over this run's lock" in run.message and f"stopped before {stopped_before}" in run.message
    truth = emulator.truth()
    assert truth["instances"][INSTANCE]["gc_tasks"] == []  # no GC started
    policy = truth["buckets"][BUCKET]["policy"]
    if frozen_by_then:  # the freeze stays on, for the run that holds the instance now (not thawed under it)
        freezes = ledger_rows(config, folder.name)["freezes"]
        assert [f.status for f in freezes] == ["applied"]
        assert [s["Sid"] for s in policy["Statement"]] == [freezes[0].sid]
    else:
        assert policy is None and ledger_rows(config, folder.name)["freezes"] == []
    with Ledger(config["ledger"]["url"]).session() as session:  # the new holder's row untouched
        assert session.get(InstanceLock, INSTANCE).token == "thief-token"
