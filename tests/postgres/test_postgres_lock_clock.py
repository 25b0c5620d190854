"""The instance lock on PostgreSQL keeps time by the database's clock (issue 14 item 6).

On a fleet the ledger is one PostgreSQL server and the runs are on many hosts: a holder on
a host whose clock is 10 minutes behind heartbeats through the server's ``now()``, so a
run on a host with a right clock never takes it over while it lives. The holder is the
skewed child process of tests/reliability/test_instance_lock.py (its Python clock 10
minutes behind, another host's name), here against the throwaway PostgreSQL cluster.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest

from acr_gc.ledger import InstanceLock, Ledger
from acr_gc.ledger import instance_lock as lock
from reliability.test_instance_lock import SKEWED_HOLDER, holder_process

pytestmark = pytest.mark.slow


def test_a_holder_10_minutes_behind_is_not_taken_over_on_postgresql(postgres_url):
    ledger = Ledger(postgres_url)
    with holder_process(SKEWED_HOLDER, postgres_url) as child:
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            with pytest.raises(lock.InstanceBusy, match="run run-skewed .* on host-10-minutes-behind"):
                lock.acquire(ledger, "cri-x", "run-me")
            time.sleep(0.2)
        with ledger.session() as session:
            row = session.get(InstanceLock, "cri-x")
            assert abs(row.heartbeat_at - datetime.now(timezone.utc)) < timedelta(seconds=30), row.heartbeat_at
        child.kill()
        child.wait(10)
        with ledger.session() as session:  # silent for STALE_AFTER by the database's clock: dead
            session.get(InstanceLock, "cri-x").heartbeat_at -= lock.STALE_AFTER + timedelta(seconds=1)
        lease = lock.acquire(ledger, "cri-x", "run-me")
        assert lease.took_over is not None and lease.took_over.run_id == "run-skewed"
        lease.release()
    ledger.dispose()
