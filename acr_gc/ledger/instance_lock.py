"""One reclaiming run per instance at a time, held in the ledger.

Two runs of one instance would each freeze the bucket (the second adopting the first's
freeze), attach to one GC task and then thaw under each other's feet. So a run takes the
instance's row in ``instance_locks`` before it looks at the cloud; a second run finds the
row and stops with a message naming the holder.

A killed run cannot release its row. A holder is *dead* — and its row may be taken over —
when its process is gone from this host, or when it has not renewed its heartbeat for
``STALE_AFTER`` (another host, a frozen VM). The takeover is a compare-and-swap on the
holder's token, so of two runs taking over at once exactly one wins. The same database
serves SQLite and PostgreSQL: the primary key does the exclusion on both.

Every time in the row, and the "now" a heartbeat's age is measured against, is the
DATABASE's clock (:func:`db_now`), never a host's: with a fleet on PostgreSQL, a holder
whose host clock is minutes behind would otherwise write heartbeats that look stale to
every other host, and be taken over while alive. (An embedded SQLite ledger's clock is
the clock of the machine whose process reads it: one machine, one clock.)

A run checks its lease (:meth:`InstanceLease.confirm`) right before each change it makes
in the cloud — the freeze, the GC start, the thaw — so a run judged dead and taken over
stops before its next change instead of freezing, starting or thawing under the new
holder's feet.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import psutil
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError

from acr_gc.ledger.models import InstanceLock as LockRow
from acr_gc.ledger.store import Ledger

log = logging.getLogger(__name__)

HEARTBEAT_EVERY = timedelta(seconds=15)
STALE_AFTER = timedelta(seconds=120)


class InstanceBusy(RuntimeError):
    """Another live run holds the instance."""


class LeaseLost(RuntimeError):
    """Another run took the instance over: this run must change nothing more in the cloud."""


@dataclass(frozen=True)
class Holder:
    instance_id: str
    token: str
    run_id: str
    host: str
    pid: int
    acquired_at: datetime
    heartbeat_at: datetime

    def describe(self, now: datetime) -> str:
        age = int((now - self.heartbeat_at).total_seconds())
        return (f"run {self.run_id} (pid {self.pid} on {self.host}, since "
                f"{self.acquired_at.strftime('%Y-%m-%dT%H:%M:%SZ')}, last heartbeat {age} s ago)")


def is_dead(holder: Holder, now: datetime, this_host: str, process_alive: bool) -> bool:
    """A holder is dead when its heartbeat is older than ``STALE_AFTER``, or when it ran
    on this host and its process is gone (``process_alive`` is only meaningful then)."""
    if now - holder.heartbeat_at > STALE_AFTER:
        return True
    return holder.host == this_host and not process_alive


def _process_alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:  # someone else's process: it exists
        return True


def db_now(session) -> datetime:
    """The database's current time, aware UTC. SQLite's ``CURRENT_TIMESTAMP`` is UTC text
    with whole seconds, so its ``strftime('%f')`` (milliseconds) is read instead;
    PostgreSQL's ``now()`` is a ``timestamptz``."""
    if session.get_bind().dialect.name == "sqlite":
        value = datetime.fromisoformat(session.execute(select(func.strftime("%Y-%m-%d %H:%M:%f", "now"))).scalar_one())
    else:
        value = session.execute(select(func.now())).scalar_one()
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def current_holder(ledger: Ledger, instance_id: str) -> tuple[Holder | None, datetime]:
    """The instance's holder (None: nobody), and the database's time as it was read."""
    with ledger.session() as session:
        row = session.get(LockRow, instance_id)
        return (_holder(row) if row is not None else None), db_now(session)


def live_holder(ledger: Ledger, instance_id: str) -> Holder | None:
    """The run holding the instance, unless it is dead (or there is none)."""
    holder, now = current_holder(ledger, instance_id)
    if holder is None:
        return None
    alive = _process_alive(holder.pid) if holder.host == socket.gethostname() else True
    return None if is_dead(holder, now, socket.gethostname(), alive) else holder


def _holder(row: LockRow) -> Holder:
    return Holder(row.instance_id, row.token, row.run_id, row.host, row.pid, row.acquired_at, row.heartbeat_at)


class InstanceLease:
    """The instance held by this process; renewed in the background until released."""

    def __init__(self, ledger: Ledger, holder: Holder, took_over: Holder | None):
        self.ledger, self.holder, self.took_over = ledger, holder, took_over
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"acr-gc-lease-{holder.instance_id}", daemon=True)
        self._thread.start()

    def _renew(self) -> bool:
        """Write a heartbeat (the database's time) if the row is still ours; False if not."""
        with self.ledger.session() as session:
            renewed = session.execute(
                update(LockRow)
                .where(LockRow.instance_id == self.holder.instance_id, LockRow.token == self.holder.token)
                .values(heartbeat_at=db_now(session))
            ).rowcount
        if not renewed and self._stop.is_set():
            return False  # a beat already on its way when this run released the row: not a takeover
        if not renewed and not self.lost:
            self.lost = True
            log.error("the lock on instance %s was taken over by another run", self.holder.instance_id)
        return bool(renewed)

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_EVERY.total_seconds()):
            try:
                if not self._renew():
                    return
            except Exception as exc:  # the ledger briefly unreachable: try again next beat
                log.warning("could not renew the lock on %s: %s", self.holder.instance_id, exc)

    def confirm(self, before: str) -> None:
        """Renew the lease now, right before a change in the cloud (``before`` names it);
        :class:`LeaseLost` when another run has taken the instance over — then this run
        must not make that change (the new holder owns the freeze and the GC task now).
        An unreachable ledger raises too: a change must not be made unrecorded."""
        if self.lost or not self._renew():
            raise LeaseLost(
                f"instance {self.holder.instance_id}: another run took over this run's lock (judged dead: no "
                f"heartbeat for {int(STALE_AFTER.total_seconds())} s); stopped before {before}, which that run "
                "now owns")

    def release(self) -> None:
        self._stop.set()
        with self.ledger.session() as session:
            session.execute(
                delete(LockRow).where(LockRow.instance_id == self.holder.instance_id, LockRow.token == self.holder.token)
            )

    def __enter__(self) -> "InstanceLease":
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.release()
        except Exception as error:  # never hide the run's own outcome; the row goes stale by itself
            log.error("could not release the lock on %s (%s): the next run takes it over once this process "
                      "has ended", self.holder.instance_id, error)


def acquire(ledger: Ledger, instance_id: str, run_id: str) -> InstanceLease:
    """Hold ``instance_id`` for ``run_id``, taking over a dead holder; InstanceBusy otherwise."""
    host, pid = socket.gethostname(), os.getpid()
    for _ in range(5):
        try:
            with ledger.session() as session:
                now = db_now(session)
                mine = Holder(instance_id, secrets.token_hex(16), run_id, host, pid, now, now)
                session.add(LockRow(**mine.__dict__))
            return InstanceLease(ledger, mine, None)
        except IntegrityError:
            pass
        holder, now = current_holder(ledger, instance_id)
        if holder is None:
            continue  # released between our insert and our read: try again
        alive = _process_alive(holder.pid) if holder.host == host else True
        if not is_dead(holder, now, host, alive):
            raise InstanceBusy(
                f"instance {instance_id} is being reclaimed by {holder.describe(now)}; this run stops before "
                "any change — wait for that run to finish (or cancel it), then run again"
            )
        with ledger.session() as session:
            taken_at = db_now(session)
            mine = Holder(instance_id, secrets.token_hex(16), run_id, host, pid, taken_at, taken_at)
            swapped = session.execute(
                update(LockRow)
                .where(LockRow.instance_id == instance_id, LockRow.token == holder.token)
                .values(token=mine.token, run_id=run_id, host=host, pid=pid, acquired_at=taken_at,
                        heartbeat_at=taken_at)
            ).rowcount
        if swapped:
            log.warning("instance %s: took over the lock of %s, which is no longer running",
                        instance_id, holder.describe(now))
            return InstanceLease(ledger, mine, holder)
    raise InstanceBusy(f"instance {instance_id}: could not take the run lock (other runs keep taking it)")
