"""The instance lock in the ledger (acr_gc/ledger/instance_lock.py): one reclaiming run
per instance, a dead holder taken over, a live one never.

Real SQLite ledgers on disk, real processes for "alive" and "killed"; several Ledger
objects (engines) on one file stand for several runs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone

import pytest

from acr_gc.ledger import InstanceLock, Ledger
from acr_gc.ledger import instance_lock as lock

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=timezone.utc)


def _holder(host="h1", age_s=0.0):
    return lock.Holder("cri-x", "t", "run-1", host, 4242, NOW - timedelta(hours=1), NOW - timedelta(seconds=age_s))


@pytest.mark.parametrize(
    ("host", "age_s", "alive", "dead"),
    [
        ("h1", 0, True, False),  # this host, process there, fresh heartbeat: live
        ("h1", 5, False, True),  # this host, process gone: dead at once (a SIGKILL)
        ("h1", 121, True, True),  # this host, process there but silent > STALE_AFTER (pid reused, hung)
        ("h2", 119, True, False),  # another host: only the heartbeat can tell — still fresh
        ("h2", 119, False, False),  # … and its pid means nothing here
        ("h2", 121, True, True),  # another host, silent > STALE_AFTER: dead
    ],
)
def test_a_holder_is_dead_when_its_process_is_gone_here_or_its_heartbeat_is_stale(host, age_s, alive, dead):
    assert lock.STALE_AFTER == timedelta(seconds=120)
    assert lock.is_dead(_holder(host, age_s), NOW, "h1", alive) is dead


def _ledger(tmp_path) -> Ledger:
    return Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")


def test_runs_acquiring_together_exactly_one_proceeds_the_others_name_it(tmp_path):
    _ledger(tmp_path)  # tables exist
    ledgers = [_ledger(tmp_path) for _ in range(8)]
    start = threading.Barrier(len(ledgers))
    outcomes: list = [None] * len(ledgers)

    def contend(index):
        start.wait()
        try:
            outcomes[index] = lock.acquire(ledgers[index], "cri-x", f"run-{index}")
        except lock.InstanceBusy as exc:
            outcomes[index] = exc

    threads = [threading.Thread(target=contend, args=(i,)) for i in range(len(ledgers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    leases = [o for o in outcomes if isinstance(o, lock.InstanceLease)]
    refusals = [o for o in outcomes if isinstance(o, lock.InstanceBusy)]
    assert len(leases) == 1 and len(refusals) == 7, outcomes
    winner = leases[0].holder.run_id
    assert all(f"being reclaimed by run {winner} (pid {os.getpid()}" in str(r) for r in refusals), refusals
    with ledgers[0].session() as session:
        assert session.get(InstanceLock, "cri-x").run_id == winner
    leases[0].release()
    with ledgers[0].session() as session:
        assert session.get(InstanceLock, "cri-x") is None
    lock.acquire(ledgers[1], "cri-x", "run-next").release()  # free again once released


HOLD_SCRIPT = """
import sys, time
from acr_gc.ledger import Ledger
from acr_gc.ledger.instance_lock import acquire
acquire(Ledger(sys.argv[1]), "cri-x", "run-child")
print("held", flush=True)
time.sleep(600)
"""


@contextmanager
def holder_process(script: str, url: str) -> Iterator[subprocess.Popen]:
    """A child process that took the lock of cri-x in the ledger at ``url`` (``script``
    prints "held" once it has); killed on the way out."""
    child = subprocess.Popen([sys.executable, "-c", script, url], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "held"
        yield child
    finally:
        child.kill()
        child.wait(10)


def test_a_live_holder_refuses_and_a_killed_one_is_taken_over(tmp_path):
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    with holder_process(HOLD_SCRIPT, url) as child:
        ledger = Ledger(url)
        with pytest.raises(lock.InstanceBusy, match=rf"run run-child \(pid {child.pid} on "):
            lock.acquire(ledger, "cri-x", "run-me")
        assert lock.live_holder(ledger, "cri-x").run_id == "run-child"
        child.send_signal(signal.SIGKILL)
        child.wait(10)  # reaped: a zombie would still count as alive
        assert lock.live_holder(ledger, "cri-x") is None
        lease = lock.acquire(ledger, "cri-x", "run-me")
        assert lease.took_over is not None and lease.took_over.run_id == "run-child"
        lease.release()


def _plant(ledger: Ledger, host: str, age: timedelta) -> None:
    now = datetime.now(timezone.utc)
    with ledger.session() as session:
        session.add(InstanceLock(instance_id="cri-x", token="planted", run_id="run-far", host=host, pid=1,
                                 acquired_at=now - timedelta(hours=2), heartbeat_at=now - age))


def test_a_holder_on_another_host_is_taken_over_only_once_silent_for_STALE_AFTER(tmp_path):
    ledger = _ledger(tmp_path)
    _plant(ledger, "another-host", timedelta(seconds=30))
    with pytest.raises(lock.InstanceBusy, match="run run-far"):
        lock.acquire(ledger, "cri-x", "run-me")
    with ledger.session() as session:
        session.get(InstanceLock, "cri-x").heartbeat_at = datetime.now(timezone.utc) - timedelta(seconds=130)
    racers = [_ledger(tmp_path) for _ in range(6)]
    start = threading.Barrier(len(racers))
    won: list = []

    def take(index):
        start.wait()
        try:
            won.append(lock.acquire(racers[index], "cri-x", f"run-{index}"))
        except lock.InstanceBusy:
            pass

    threads = [threading.Thread(target=take, args=(i,)) for i in range(len(racers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(won) == 1, won  # the compare-and-swap on the token lets exactly one take over
    assert won[0].took_over.run_id == "run-far"
    won[0].release()


def test_the_lease_beats_while_held_and_notices_when_it_was_taken(tmp_path, monkeypatch):
    monkeypatch.setattr(lock, "HEARTBEAT_EVERY", timedelta(seconds=0.2))
    ledger = _ledger(tmp_path)
    lease = lock.acquire(ledger, "cri-x", "run-me")
    first = lease.holder.heartbeat_at
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with ledger.session() as session:
            if session.get(InstanceLock, "cri-x").heartbeat_at > first:
                break
        time.sleep(0.1)
    else:
        raise AssertionError("the heartbeat was never renewed")
    with ledger.session() as session:  # someone judged us dead and took over
        session.get(InstanceLock, "cri-x").token = "someone-else"
    deadline = time.monotonic() + 10
    while not lease.lost and time.monotonic() < deadline:
        time.sleep(0.1)
    assert lease.lost
    lease.release()  # must not delete the new holder's row
    with ledger.session() as session:
        assert session.get(InstanceLock, "cri-x").token == "someone-else"


def test_a_heartbeat_that_reaches_the_ledger_after_the_release_is_not_a_takeover(tmp_path, caplog):
    """Seen once in 30 commands beside two CPU hogs: a successful `acr-gc demo` printed
    "the lock on instance cri-demo was taken over by another run" as it ended. Its heartbeat
    thread had woken just before the release and reached the ledger just after the release
    deleted the row. Played here in that order: the release, then that beat's renewal."""
    ledger = _ledger(tmp_path)
    lease = lock.acquire(ledger, "cri-x", "run-me")
    lease.release()
    with caplog.at_level("WARNING", logger=lock.__name__):
        assert lease._renew() is False  # the beat that was already on its way
    assert not lease.lost
    assert [r.getMessage() for r in caplog.records if r.levelname in ("WARNING", "ERROR")] == []


# A holder on a host whose clock is 10 minutes behind: everything that process reads from
# its own clock (datetime.now, time.time) is shifted, and it claims another host's name,
# so only its heartbeat can tell whether it is alive. It heartbeats every 0.3 s.
SKEWED_HOLDER = """
import datetime as _dt, socket, sys, time
SKEW = _dt.timedelta(minutes=-10)
class _SkewedDatetime(_dt.datetime):
    @classmethod
    def now(cls, tz=None):
        return _dt.datetime.fromtimestamp(_real_time() + SKEW.total_seconds(), tz)
    @classmethod
    def utcnow(cls):
        return cls.now(_dt.timezone.utc).replace(tzinfo=None)
_real_time = time.time
time.time = lambda: _real_time() + SKEW.total_seconds()
_dt.datetime = _SkewedDatetime
socket.gethostname = lambda: "host-10-minutes-behind"
from acr_gc.ledger import Ledger
from acr_gc.ledger import instance_lock as lock
lock.HEARTBEAT_EVERY = _dt.timedelta(seconds=0.3)
lease = lock.acquire(Ledger(sys.argv[1]), "cri-x", "run-skewed")
print("held", flush=True)
time.sleep(600)
"""


def test_a_holder_whose_clock_is_10_minutes_behind_is_not_taken_over_while_it_heartbeats(tmp_path):
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    with holder_process(SKEWED_HOLDER, url):
        ledger = Ledger(url)
        deadline = time.monotonic() + 3  # ten heartbeats of the skewed holder
        while time.monotonic() < deadline:
            with pytest.raises(lock.InstanceBusy, match=r"run run-skewed \(pid \d+ on host-10-minutes-behind"):
                lock.acquire(ledger, "cri-x", "run-me")
            assert lock.live_holder(ledger, "cri-x").run_id == "run-skewed"
            time.sleep(0.2)
        with ledger.session() as session:  # the holder's times are the database's, not its own clock's
            row = session.get(InstanceLock, "cri-x")
            for written in (row.acquired_at, row.heartbeat_at):
                assert abs(written - datetime.now(timezone.utc)) < timedelta(seconds=30), written


def test_confirm_renews_while_held_and_refuses_once_the_lease_was_taken(tmp_path):
    ledger = _ledger(tmp_path)
    lease = lock.acquire(ledger, "cri-x", "run-me")
    try:
        lease.confirm("the freeze")  # still ours: no error
        with ledger.session() as session:  # judged dead and taken over by another run
            session.get(InstanceLock, "cri-x").token = "someone-else"
        with pytest.raises(lock.LeaseLost, match="stopped before the start of GC"):
            lease.confirm("the start of GC")
        assert lease.lost
    finally:
        lease.release()
    with ledger.session() as session:
        assert session.get(InstanceLock, "cri-x").token == "someone-else"
