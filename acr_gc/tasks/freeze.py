"""Freeze and thaw of the registry's bucket (DESIGN section 5), recorded in the ledger.

Order matters for crash safety: the original policy is written to the ledger *before*
the freeze is put on the bucket, so whatever kills the process afterwards, ``thaw``
finds what to restore. One construct owns the freeze in a run, :func:`bucket_frozen`:
it thaws on every way out, but never while GC may still run. What a run had to leave
frozen (GC still running, a killed process) is thawed by :func:`settle_freeze`
(``acr-gc sample``, the daily sampler) or ``acr-gc thaw`` once the task is seen ended.
Thaw works from the bucket and the ledger alone, so calling it twice is harmless.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from acr_gc.cloud.acr import AcrClient
from acr_gc.cloud.clients import CloudClients
from acr_gc.cloud.oss import OssClient
from acr_gc.cloud.errors import CloudError
from acr_gc.config import Config
from acr_gc.gc.driver import GcStatus
from acr_gc.ledger import Freeze, Ledger
from acr_gc.ledger.freezes import mark_freeze_applied, mark_freeze_undone, outstanding_freezes, record_freeze_intent
from acr_gc.ledger.gc_tasks import open_gc_tasks, record_gc_seen_ended
from acr_gc.ledger.store import LedgerUnavailable
from acr_gc.rules.freeze import (
    apply_freeze,
    freeze_sid,
    freeze_sids,
    freeze_statement,
    statement_present,
    thaw_policy,
)

log = logging.getLogger(__name__)

def freeze_bucket(config: Config, oss: OssClient, ledger: Ledger, run_id: str) -> Freeze:
    """Deny object writes and deletes on ``oss``'s bucket; reuse a freeze already recorded.

    A freeze left by a killed run is adopted rather than stacked: its saved original is
    still the policy to restore, and its statement is (re)applied idempotently.
    """
    bucket = oss.bucket
    earlier = outstanding_freezes(ledger, bucket)
    current = oss.get_policy()
    if earlier:
        record = earlier[0]
        sid = record.sid
        log.warning("bucket %s: reusing the freeze recorded by run %s (never stacked)", bucket, record.run_id)
    else:
        sid = freeze_sid(run_id)
        record = record_freeze_intent(ledger, run_id, bucket, sid, current)
    statement = freeze_statement(bucket, run_id, config.freeze.principals)
    statement["Sid"] = sid
    oss.put_policy(apply_freeze(current, statement))
    mark_freeze_applied(ledger, record.id)
    return record


@dataclass
class ThawReport:
    restored: int  # freezes undone now (the ledger's, and statements it did not know)
    notes: list[str]
    partial: bool = False  # the policy had changed meanwhile: only our statement was removed

    @property
    def message(self) -> str:
        if not self.restored and not self.notes:
            return "nothing to thaw"
        return "; ".join(self.notes) or f"{self.restored} freeze(s) undone"

    @property
    def freeze_restored(self) -> bool | str:
        """summary.json's ``checks.freeze_restored``: ``true``, or ``"partial"``."""
        return "partial" if self.partial else True


def thaw_bucket(oss: OssClient, ledger: Ledger) -> ThawReport:
    """Take every acr-gc freeze off the bucket: the bucket is the truth, the ledger the memory.

    Each freeze the ledger records is undone as recorded: the saved original is restored
    (JSON-equal), or — when someone changed the policy meanwhile — only its statement is
    removed, the policy read back, and the freeze recorded ``restored_partial``. Then any
    freeze statement still on the bucket (another run's, or one whose ledger was lost or
    lives in another folder) is removed too, keeping every other statement.
    """
    bucket = oss.bucket
    notes: list[str] = []
    restored = 0
    partial = False
    for record in outstanding_freezes(ledger, bucket):
        original = json.loads(record.original_policy) if record.original_policy is not None else None
        plan = thaw_policy(oss.get_policy(), original, record.sid)
        _apply(oss, plan)
        status = "restored"
        if plan.changed_meanwhile:
            if statement_present(oss.get_policy(), record.sid):  # read back: ours must be gone
                raise RuntimeError(f"bucket {bucket}: freeze statement {record.sid} is still there after thaw")
            status, partial = "restored_partial", True
        mark_freeze_undone(ledger, record.id, status, plan.note)
        restored += 1
        if plan.note:
            notes.append(plan.note)
            log.warning("bucket %s: %s", bucket, plan.note)
    strays = freeze_sids(oss.get_policy())
    if strays:
        current = oss.get_policy()
        for sid in strays:
            plan = thaw_policy(current, None, sid, statement={"Sid": sid})  # never equal: removes only it
            _apply(oss, plan)
            current = plan.policy
        restored += len(strays)
        note = f"removed freeze statement(s) {', '.join(strays)} that this ledger does not record"
        notes.append(note)
        log.warning("bucket %s: %s", bucket, note)
    return ThawReport(restored, notes, partial)


def _apply(oss, plan) -> None:
    if plan.action == "put":
        oss.put_policy(plan.policy)
    elif plan.action == "delete":
        oss.delete_policy()


def stray_freezes(oss: OssClient, ledger: Ledger) -> list[str]:
    """Freeze statements on ``oss``'s bucket that no freeze recorded in this ledger owns."""
    known = {record.sid for record in outstanding_freezes(ledger, oss.bucket)}
    return [sid for sid in freeze_sids(oss.get_policy()) if sid not in known]


# -- is GC over? -------------------------------------------------------------------------


def gc_may_run(config: Config, ledger: Ledger, acr: AcrClient) -> str | None:
    """Why GC of the instance may still be running, or None once every GC task the ledger
    knows of is seen ended (and, with the emulator driver, none is active).

    A task the ledger records as not ended is asked about again; one seen ended now is
    recorded so. The console driver cannot see its task through the public API: such a
    task counts as running until a person says otherwise (``acr-gc thaw --force``).
    """
    from acr_gc.gc import TERMINAL_STATES
    from acr_gc.gc.emulator import EmulatorGcDriver

    instance = config.target.instance_id
    open_tasks = open_gc_tasks(ledger, instance)
    emulator = EmulatorGcDriver(acr) if config.gc.driver == "emulator" else None
    for row in open_tasks:
        if row.driver != "emulator" or emulator is None:
            if row.task_id is None:
                continue  # never confirmed started by the person
            return (f"console GC task {row.task_id} was never confirmed finished: check the instance's Garbage "
                    "Collection page, and once it has ended run `acr-gc thaw --config … --force`")
        if row.task_id is None:
            continue  # the start was recorded but never answered: the active-task check below covers it
        status = emulator.status(row.task_id)
        if status.state not in TERMINAL_STATES:
            return f"GC task {row.task_id} is {status.state} ({status.progress} %)"
        record_gc_seen_ended(ledger, row.id, status)
    active = emulator.active_task() if emulator is not None else None
    if active is not None:
        return f"GC task {active.task_id} is {active.state} ({active.progress} %)"
    return None


def settle_freeze(config: Config, ledger: Ledger, clients: CloudClients) -> str:
    """Thaw a freeze left on the bucket once GC is seen ended (``acr-gc sample`` and the
    daily sampler call this): one line saying what was done or why the bucket stays frozen."""
    from acr_gc.ledger.instance_lock import live_holder

    bucket = config.target.bucket
    if not outstanding_freezes(ledger, bucket):
        return f"bucket {bucket}: not frozen by acr-gc"
    holder = live_holder(ledger, config.target.instance_id)
    if holder is not None:
        return f"bucket {bucket}: frozen by run {holder.run_id}, which is still running"
    reason = gc_may_run(config, ledger, clients.acr)
    if reason is not None:
        return f"bucket {bucket} stays frozen: {reason}"
    return f"bucket {bucket}: GC has ended; {thaw_bucket(clients.oss, ledger).message}"


# -- the one owner of the freeze ------------------------------------------------------------


class FrozenBucket:
    """What the body of :func:`bucket_frozen` tells the freeze about GC, and the one place
    that decides when the freeze comes off."""

    def __init__(self, config: Config, oss: OssClient, ledger: Ledger, on_release: Callable[[bool | str], None],
                 confirm: Callable[[str], None] = lambda before: None):
        self.config, self.oss, self.ledger, self.on_release, self.confirm = config, oss, ledger, on_release, confirm
        self.task_id: str | None = None
        self.status: GcStatus | None = None  # the task's latest status
        self._stop: Callable[[], GcStatus | None] | None = None
        self._done = False  # thawed, or deliberately left frozen
        self.kept_for_window = False

    def gc_started(self, status: GcStatus, stop: Callable[[], GcStatus | None]) -> None:
        """GC runs from now on; ``stop`` cancels it (used when the run ends while it runs)."""
        self.task_id, self.status, self._stop = status.task_id, status, stop

    def gc_seen(self, status: GcStatus) -> None:
        self.status = status

    @property
    def gc_may_run(self) -> bool:
        from acr_gc.gc import TERMINAL_STATES

        return self.task_id is not None and (self.status is None or self.status.state not in TERMINAL_STATES)

    def keep_until_window_end(self) -> None:
        """freeze.hold_until window_end, scheduled sampling: the sampler thaws at the window's end."""
        self.kept_for_window = self._done = True
        log.info("bucket %s stays frozen until the release window closes (freeze.hold_until: window_end)",
                 self.config.target.bucket)

    def release(self) -> bool:
        """Thaw now if GC is confirmed ended (or never started); True when the bucket is thawed."""
        if self._done:
            return not self.kept_for_window and not self.gc_may_run
        self._done = True
        if self.gc_may_run:
            log.error("bucket %s stays FROZEN: GC task %s may still be running (last seen %s); `acr-gc sample` or "
                      "`acr-gc thaw --config …` thaws it once the task has ended", self.config.target.bucket,
                      self.task_id, self.status.state if self.status else "unknown")
            self.on_release(False)
            return False
        if not self._still_ours(f"the thaw of bucket {self.config.target.bucket}"):
            return False
        try:
            report = thaw_bucket(self.oss, self.ledger)
        except (CloudError, LedgerUnavailable) as exc:
            log.error("thaw failed (%s): run `acr-gc thaw --config …` once it is reachable again", exc)
            self.on_release(False)
            return False
        log.info("bucket %s thawed: %s", self.config.target.bucket, report.message)
        self.on_release(report.freeze_restored)
        return True

    def _still_ours(self, change: str) -> bool:
        """Whether this run still holds the instance (``confirm``); when another run took it
        over, the freeze and any GC task are that run's now: left as they are. A ledger
        that cannot be read does not stop the way out (cancelling our GC, thawing): nobody
        can take the instance over through a ledger nobody reaches, and the bucket is the
        truth the thaw works from."""
        from acr_gc.ledger.instance_lock import LeaseLost

        try:
            self.confirm(change)
        except LeaseLost as exc:
            log.error("%s; bucket %s is left as it is for that run", exc, self.config.target.bucket)
            self._done = True
            self.on_release(False)
            return False
        except Exception as exc:
            log.warning("could not confirm the instance lock before %s (%s): going on", change, exc)
        return True

    def _stop_gc(self) -> None:
        """The run is ending while its GC task runs: cancel it, and see where it stands."""
        if not self._still_ours(f"cancelling GC task {self.task_id}"):
            return
        try:
            status = self._stop() if self._stop is not None else None
        except Exception as exc:  # the bucket then stays frozen: GC may still run
            log.error("could not cancel GC task %s: %s", self.task_id, exc)
            return
        if status is not None:
            self.status = status


@contextmanager
def bucket_frozen(config: Config, oss: OssClient, ledger: Ledger, run_id: str, *, needed: bool = True,
                  on_release: Callable[[bool | str], None] = lambda restored: None,
                  confirm: Callable[[str], None] = lambda before: None) -> Iterator[FrozenBucket]:
    """The freeze, owned by one construct (DESIGN section 5).

    On entry the intent goes to the ledger and the Deny onto the bucket (``needed`` False:
    a taken-over GC task has ended already, so nothing is frozen anew and only an earlier
    freeze is undone). On every way out — normal end, error, cancellation — a GC task that
    is still running is cancelled first, and the bucket is thawed only when that task is
    confirmed ended (or was never started). While GC may still run it stays frozen: the
    run says so, and ``acr-gc sample`` or ``acr-gc thaw`` thaws once the task has ended.
    ``confirm(change)`` runs before each change (the instance lease): a run taken over by
    another changes nothing more.
    """
    if needed:
        confirm(f"the freeze of bucket {config.target.bucket}")
        freeze_bucket(config, oss, ledger, run_id)
    frozen = FrozenBucket(config, oss, ledger, on_release, confirm)
    try:
        yield frozen
    except BaseException:
        if frozen.gc_may_run:
            frozen._stop_gc()
        frozen.release()
        raise
    frozen.release()
