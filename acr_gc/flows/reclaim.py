"""``reclaim_storage``: one instance through the whole procedure (DESIGN section 2).

instance lock → inventory → plan → gate → whitelist → bucket → baseline sample → freeze →
GC → watch → thaw → verify → report. Nothing in the cloud changes before every check has
passed; the freeze is undone on every path out (``finally``, the failure/cancellation/
crash hooks, and ``acr-gc thaw`` for a process that was killed). One run per instance at
a time (the ledger's instance lock); a run that finds a killed run's GC task takes it
over, with that run's plan, instead of starting a second one.
"""

import json
import logging
from datetime import datetime, timezone

import pandas as pd
from prefect import flow, get_run_logger
from prefect.client.orchestration import get_client
from prefect.context import FlowRunContext
from prefect.states import Cancelled, Completed, Failed, State
from prefect.task_runners import ThreadPoolTaskRunner

from acr_gc.cloud.errors import CloudError
from acr_gc.config import Config
from acr_gc.gc import TERMINAL_STATES, make_driver
from acr_gc.ledger import Ledger, Run, Sample
from acr_gc.ledger.instance_lock import InstanceBusy, InstanceLease, acquire, live_holder
from acr_gc.ledger.plans import save_plan
from acr_gc.ledger.store import LedgerUnavailable
from acr_gc.reports import files
from acr_gc.reports.console import printable  # names from the API reach terminals and logs
from acr_gc.reports.summary import (
    ChecksSummary,
    CostSummary,
    GcSummary,
    PlanSummary,
    StorageSummary,
    Summary,
)
from acr_gc.rules.verification import verify_deletions
from acr_gc.rules.window import window_end
from acr_gc.tasks import inventory as inv
from acr_gc.tasks.checks import CheckFailed, check_bucket, check_whitelist
from acr_gc.tasks.freeze import freeze_bucket, outstanding_freezes, thaw_bucket
from acr_gc.tasks.gc_run import _record as record_gc_status
from acr_gc.tasks.gc_run import adopt_gc, start_gc, watch_gc
from acr_gc.tasks.planning import list_repositories, list_tags, plan_instance_steps
from acr_gc.tasks.preflight import BadInput, preflight
from acr_gc.tasks.sampling import baseline_sample, sample_bucket, sample_until
from acr_gc.tasks.takeover import Inherited, take_over_dead_runs

log = logging.getLogger(__name__)

DELETED_TAGS_COLUMNS = ["namespace", "repo", "tag", "digest", "size", "updated", "regenerable_by", "regenerate_from"]


class UnexpectedDeletions(RuntimeError):
    """GC deleted tags outside the verified plan: the one failure that must be loud."""


class _Journal:
    """The run's summary as it grows, mirrored to summary.json and the ledger's run row."""

    def __init__(self, config: Config, ledger: Ledger, run_id: str, state: str = "RUNNING"):
        self.config, self.ledger, self.run_id = config, ledger, run_id
        self.folder = files.run_dir(config.report.out_dir, config.target.instance_id, run_id)
        self.summary = Summary(
            run_id=run_id,
            instance_id=config.target.instance_id,
            bucket=config.target.bucket,
            state="FAILED",
            cost=CostSummary(currency=config.report.currency, price_per_gb_month=config.report.price_per_gb_month),
        )
        ctx = FlowRunContext.get()
        with ledger.session() as session:
            session.merge(
                Run(
                    run_id=run_id,
                    instance_id=config.target.instance_id,
                    bucket=config.target.bucket,
                    region=config.target.region,
                    state=state,
                    started_at=datetime.now(timezone.utc),
                    flow_run_id=str(ctx.flow_run.id) if ctx and ctx.flow_run else None,
                    out_dir=str(config.report.out_dir),
                    price_per_gb_month=config.report.price_per_gb_month,
                    currency=config.report.currency,
                )
            )

    def update_run(self, **fields) -> None:
        with self.ledger.session() as session:
            run = session.get(Run, self.run_id)
            for name, value in fields.items():
                setattr(run, name, value)

    def finish(self, state: str, message: str | None) -> None:
        self.summary.state = state
        files.write_summary(self.summary, self.folder)
        self.update_run(
            state=state,
            message=message,
            finished_at=datetime.now(timezone.utc),
            plan_json=self.summary.plan.model_dump_json() if self.summary.plan else None,
            checks_json=self.summary.checks.model_dump_json(),
            gc_json=self.summary.gc.model_dump_json(),
        )


def _thaw_hook(flow, flow_run, state) -> None:
    """Failure, cancellation or crash: whatever happened, the bucket is thawed — unless
    another live run holds the instance (this one was turned away): its freeze is its own."""
    try:
        config = Config.model_validate(flow_run.parameters["config"])
        ledger = Ledger(config.ledger.url)
        holder = live_holder(ledger, config.target.instance_id)
        if holder is not None:
            logging.getLogger("acr_gc").info("no thaw after %s: run %s holds the instance", state.type.value,
                                             holder.run_id)
            return
        report = thaw_bucket(config, ledger)
        logging.getLogger("acr_gc").warning("thaw after %s: %s", state.type.value, report.message)
    except Exception as exc:  # a hook must not hide the run's own outcome
        logging.getLogger("acr_gc").error("thaw hook failed (%s): run `acr-gc thaw --config …`", exc)


def _cancel_requested() -> bool:
    """True once someone asked Prefect to cancel this flow run (read from the API)."""
    ctx = FlowRunContext.get()
    if ctx is None or ctx.flow_run is None:
        return False
    try:
        with get_client(sync_client=True) as client:
            state = client.read_flow_run(ctx.flow_run.id).state
        return bool(state and (state.is_cancelling() or state.is_cancelled()))
    except Exception:  # the API being briefly unreachable is no reason to cancel
        return False


@flow(
    name="reclaim-storage",
    task_runner=ThreadPoolTaskRunner(max_workers=8),
    on_failure=[_thaw_hook],
    on_cancellation=[_thaw_hook],
    on_crashed=[_thaw_hook],
)
def reclaim_storage(config: Config, run_id: str | None = None) -> State:
    logger = get_run_logger()
    run_id = run_id or files.new_run_id()
    ledger = Ledger(config.ledger.url)
    try:
        lease = acquire(ledger, config.target.instance_id, run_id)
    except InstanceBusy as exc:
        logger.error("run blocked before any change: %s", exc)
        journal = _Journal(config, ledger, run_id, state="BLOCKED")
        journal.finish("BLOCKED", str(exc))
        return Failed(message=f"BLOCKED: {exc}", data=journal.summary.model_dump(mode="json"))
    with lease:
        inherited = take_over_dead_runs(ledger, config.target.instance_id, run_id)
        return _reclaim(config, ledger, run_id, lease, inherited, logger)


def _reclaim(config: Config, ledger: Ledger, run_id: str, lease: InstanceLease, inherited: Inherited | None,
             logger) -> State:
    journal = _Journal(config, ledger, run_id)
    summary = journal.summary
    frozen = False
    driver = None
    running_task: str | None = None  # a GC task this run started and has not seen end
    row_id: int | None = None  # its ledger row
    try:
        # ---- checks: nothing changes in the cloud before all of them pass ----------------
        try:
            preflight(config)
            if inherited is None:
                result = plan_instance_steps(config)
                verdicts = result.verdicts
                summary.plan = PlanSummary(**result.summary)
                gate_passed, namespaces_json, charts = result.gate.passed, \
                    result.per_namespace().to_json(orient="records"), result.charts
            else:
                logger.warning("run %s was killed while its GC task %s ran: this run finishes that task against "
                               "the plan it was started from", inherited.run.run_id, inherited.task_id)
                verdicts = inherited.verdicts
                summary.plan = PlanSummary.model_validate_json(inherited.run.plan_json)
                gate_passed, namespaces_json, charts = True, inherited.run.namespaces_json, inherited.run.charts
            files.write_plan_csv(verdicts, journal.folder)
            journal.update_run(namespaces_json=namespaces_json, charts=charts, plan_json=summary.plan.model_dump_json())
            if not gate_passed:
                blocking = result.gate.blocking
                listed = ", ".join(f"{r.namespace}/{r.repo}:{r.tag}" for r in blocking.head(10).itertuples())
                raise CheckFailed(
                    f"gate blocked: {len(blocking)} expired tag(s) cannot be regenerated ({listed}"
                    f"{', …' if len(blocking) > 10 else ''}); add build rules or manifest lines, or allow them "
                    "in policy.allow_unregenerable (plan.csv lists them)"
                )
            expired = verdicts[verdicts["expired"]]
            driver = make_driver(config, expired[["namespace", "repo", "repo_id", "tag"]])
            check_whitelist(config, driver)
            window = check_bucket(config)
            before = _baseline(config, ledger, run_id, inherited)  # may wait for lagging statistics
        except (BadInput, CheckFailed) as exc:
            logger.error("run blocked before any change: %s", printable(str(exc)))
            journal.finish("BLOCKED", str(exc))
            return Failed(message=f"BLOCKED: {exc}", data=summary.model_dump(mode="json"))

        # ---- the change: freeze, GC, watch ------------------------------------------------
        save_plan(ledger, run_id, verdicts)  # before any change: a run taking over needs it
        summary.storage = StorageSummary(before_bytes=before.storage_bytes, samples=1)
        _write_deleted_tags(expired, journal)
        summary.gc = GcSummary(driver=driver.name)
        if lease.lost:
            raise RuntimeError("the instance lock was taken over by another run: stopping before any change")
        adopted = driver.status(inherited.task_id) if inherited is not None and inherited.task_id else None
        if adopted is None or adopted.state not in TERMINAL_STATES:
            frozen = True  # from here on, `finally` thaws (the ledger knows what to restore)
            freeze_bucket(config, ledger, run_id)
        else:  # the killed run's GC ended meanwhile: nothing to freeze for, only a freeze to undo
            frozen = bool(outstanding_freezes(ledger, config.target.bucket))
        if adopted is not None:
            started, row_id = adopt_gc(config, ledger, run_id, driver, adopted.task_id)
        else:
            started, row_id = start_gc(config, ledger, run_id, driver)
        running_task = summary.gc.task_id = started.task_id
        journal.update_run(gc_started_at=started.created or datetime.now(timezone.utc))
        outcome = watch_gc(config, ledger, driver, started, row_id, cancel_requested=_cancel_requested)
        summary.gc.state = outcome.status.state
        running_task = None if outcome.status.state in TERMINAL_STATES else running_task
        summary.gc.tags_deleted = outcome.status.tags_deleted
        finished_at = outcome.status.finished or datetime.now(timezone.utc)
        journal.update_run(gc_finished_at=finished_at)
        if config.freeze.hold_until == "gc_complete":
            report = thaw_bucket(config, ledger)
            frozen = False
            summary.checks.freeze_restored = not outstanding_freezes(ledger, config.target.bucket)
            logger.info("bucket thawed: %s", report.message)

        # ---- verify: deleted ⊆ plan -------------------------------------------------------
        after_tags = _tags_now(config)
        verification = verify_deletions(verdicts, expired, after_tags)
        summary.checks.unexpected_deletions = len(verification.unexpected)
        summary.checks.missed_deletions = len(verification.missed)
        end = window_end(finished_at, window)
        summary.storage.window_end = end.strftime("%Y-%m-%dT%H:%M:%SZ") if end else None
        journal.update_run(window_end=end)
        after = sample_bucket(config, ledger, run_id, "after")
        if after is not None:  # None: the lagging statistics predate the series' latest sample
            summary.storage.samples += 1
            summary.storage.after_bytes = after.storage_bytes

        if len(verification.unexpected):
            listed = ", ".join(f"{r.namespace}/{r.repo}:{r.tag}" for r in verification.unexpected.itertuples())
            files.write_csv(verification.unexpected, journal.folder / "unexpected_deletions.csv")
            raise UnexpectedDeletions(
                f"GC deleted {len(verification.unexpected)} tag(s) outside the verified plan: {listed}"
            )
        # A task cancelled because it passed gc.timeout is a failed run, not a cancelled one.
        if not outcome.timed_out and (outcome.cancelled_by_flow or outcome.status.state == "CANCELED"):
            state, message = "CANCELED", f"GC task {outcome.status.task_id} was cancelled; " \
                f"{summary.gc.tags_deleted} planned tag(s) deleted, {len(verification.missed)} left"
        elif outcome.status.state != "SUCCESS" or outcome.timed_out:
            state = "FAILED"
            message = (f"GC task {outcome.status.task_id} ended {outcome.status.state}"
                       f"{' after gc.timeout' if outcome.timed_out else ''}: {outcome.status.error or 'see the driver'}")
        else:
            state, message = "GC_DONE", None
            if len(verification.missed):
                logger.warning("%d planned tag(s) are still present after GC", len(verification.missed))
        if frozen and state != "GC_DONE":  # held to the window's end only for a run that has one
            frozen = not _thaw_now(config, ledger, summary, logger)
        if state == "GC_DONE" and config.sampling.mode == "inline":
            logger.info("sampling inline until the release window closes at %s", summary.storage.window_end)
            samples = sample_until(config, ledger, run_id, end)
            summary.storage.samples += len(samples)
            summary.storage.after_bytes = samples[-1].storage_bytes
            if frozen:  # freeze.hold_until: window_end
                thaw_bucket(config, ledger)
                frozen = False
                summary.checks.freeze_restored = not outstanding_freezes(ledger, config.target.bucket)
        journal.finish(state, message)
        _report(ledger, run_id, journal)
        data = json.loads((journal.folder / "summary.json").read_text(encoding="utf-8"))
        if data["state"] in ("GC_DONE", "COMPLETE"):
            return Completed(message=data["state"], data=data)
        if state == "CANCELED":
            return Cancelled(message=message, data=data)
        return Failed(message=message, data=data)
    except BaseException as exc:
        # an error, or Prefect's cancellation arriving as a signal: stop our GC task too
        if running_task is not None and driver is not None:
            status = None
            try:
                status = driver.cancel(running_task)
            except Exception as cancel_error:
                logger.error("could not cancel GC task %s: %s", running_task, cancel_error)
            if status is not None:
                summary.gc.state, summary.gc.tags_deleted = status.state, status.tags_deleted
                try:
                    if row_id is not None:
                        record_gc_status(ledger, row_id, status)
                except Exception as record_error:
                    logger.error("GC task %s is %s, but the ledger did not take it: %s", running_task,
                                 status.state, record_error)
        cancelled = not isinstance(exc, Exception)
        if cancelled and summary.gc is not None and summary.gc.task_id and summary.checks.unexpected_deletions is None:
            # Prefect's SIGTERM usually lands before the watch loop sees CANCELLING: the
            # partial deletions still get checked against the plan and reported.
            try:
                verification = verify_deletions(verdicts, expired, _tags_now(config))
                summary.checks.unexpected_deletions = len(verification.unexpected)
                summary.checks.missed_deletions = len(verification.missed)
                if len(verification.unexpected):
                    logger.error("GC deleted %d tag(s) outside the verified plan: %s", len(verification.unexpected),
                                 printable(", ".join(f"{r.namespace}/{r.repo}:{r.tag}"
                                                     for r in verification.unexpected.itertuples())))
            except Exception as verify_error:
                logger.error("could not verify the partial deletions: %s", verify_error)
        message = _one_line(exc)
        if cancelled and summary.gc is not None and summary.gc.task_id:
            message = (f"cancelled ({message}): GC task {summary.gc.task_id} {summary.gc.state}, "
                       f"{summary.gc.tags_deleted} planned tag(s) deleted")
        if frozen:  # whatever freeze.hold_until says: a failed or cancelled run lets go
            frozen = not _thaw_now(config, ledger, summary, logger)
        try:
            journal.finish("CANCELED" if cancelled else "FAILED", message)
        except Exception as finish_error:  # summary.json is written first; the ledger may be what failed
            logger.error("could not record the run's end in the ledger: %s", finish_error)
        if summary.gc is not None and summary.gc.task_id:
            try:  # GC ran: the partial result is still reported
                _report(ledger, run_id, journal)
            except Exception as report_error:
                logger.error("could not render the report: %s", report_error)
        raise
    finally:
        if frozen and config.freeze.hold_until == "gc_complete":
            if _thaw_now(config, ledger, summary, logger):
                files.write_summary(summary, journal.folder)


def _baseline(config: Config, ledger: Ledger, run_id: str, inherited: Inherited | None) -> Sample:
    """The storage before GC: measured now, or — taking over a killed run's GC — that run's."""
    if inherited is None:
        return baseline_sample(config, ledger, run_id)
    kept = inherited.before
    with ledger.session() as session:
        copy = Sample(run_id=run_id, bucket=kept.bucket, taken_at=kept.taken_at, storage_bytes=kept.storage_bytes,
                      object_count=kept.object_count, phase="before")
        session.add(copy)
    return copy


def _thaw_now(config: Config, ledger: Ledger, summary: Summary, logger) -> bool:
    """Thaw, record whether every freeze is undone; False when the API or the ledger failed
    (the bucket may well be thawed then — ``acr-gc thaw`` finds out and settles the ledger)."""
    try:
        thaw_bucket(config, ledger)
        summary.checks.freeze_restored = not outstanding_freezes(ledger, config.target.bucket)
    except (CloudError, LedgerUnavailable) as exc:
        logger.error("thaw failed (%s): run `acr-gc thaw --config …` once it is reachable again", exc)
        return False
    return True


def _report(ledger: Ledger, run_id: str, journal: _Journal) -> None:
    """The report files and artifacts from the ledger; a complete window adds the savings row."""
    from acr_gc.reports.build import build_report, finalize_savings

    build_report(ledger, run_id)
    finalize_savings(ledger, run_id)
    with ledger.session() as session:
        journal.summary.state = session.get(Run, run_id).state


def _one_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0][:500]


def _write_deleted_tags(expired: pd.DataFrame, journal: _Journal) -> None:
    """Every tag GC may delete, with how to regenerate it, written before GC starts."""
    frame = expired.rename(columns={"image_size": "size"}).assign(
        updated=expired["updated"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    )
    files.write_csv(frame[DELETED_TAGS_COLUMNS].sort_values(["namespace", "repo", "tag"]), journal.folder / "deleted_tags.csv")


def _tags_now(config: Config) -> pd.DataFrame:
    """The instance's tags after GC, read the same way as the inventory."""
    repositories = list_repositories(config)
    frames = [list_tags(config, batch) for batch in inv.batches(repositories, 100)]
    return pd.concat(frames, ignore_index=True) if frames else inv.tags_frame([])
