"""``reclaim_storage``: one instance through the whole procedure (DESIGN section 2).

inventory → plan → gate → whitelist → bucket → baseline sample → freeze → GC → watch →
thaw → verify → report. Nothing in the cloud changes before every check has passed; the
freeze is undone on every path out (``finally``, the failure/cancellation/crash hooks,
and ``acr-gc thaw`` for a process that was killed).
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
from acr_gc.ledger import Ledger, Run
from acr_gc.reports import files
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
from acr_gc.tasks.gc_run import start_gc, watch_gc
from acr_gc.tasks.planning import list_repositories, list_tags, plan_instance_steps
from acr_gc.tasks.preflight import BadInput, preflight
from acr_gc.tasks.sampling import sample_bucket, sample_until

log = logging.getLogger(__name__)

DELETED_TAGS_COLUMNS = ["namespace", "repo", "tag", "digest", "size", "updated", "regenerable_by", "regenerate_from"]


class UnexpectedDeletions(RuntimeError):
    """GC deleted tags outside the verified plan: the one failure that must be loud."""


class _Journal:
    """The run's summary as it grows, mirrored to summary.json and the ledger's run row."""

    def __init__(self, config: Config, ledger: Ledger, run_id: str):
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
                    state="RUNNING",
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
    """Failure, cancellation or crash: whatever happened, the bucket is thawed."""
    try:
        config = Config.model_validate(flow_run.parameters["config"])
        report = thaw_bucket(config, Ledger(config.ledger.url))
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
            result = plan_instance_steps(config)
            files.write_plan_csv(result.verdicts, journal.folder)
            summary.plan = PlanSummary(**result.summary)
            journal.update_run(
                namespaces_json=result.per_namespace().to_json(orient="records"), charts=result.charts
            )
            if not result.gate.passed:
                blocking = result.gate.blocking
                listed = ", ".join(f"{r.namespace}/{r.repo}:{r.tag}" for r in blocking.head(10).itertuples())
                raise CheckFailed(
                    f"gate blocked: {len(blocking)} expired tag(s) cannot be regenerated ({listed}"
                    f"{', …' if len(blocking) > 10 else ''}); add build rules or manifest lines, or allow them "
                    "in policy.allow_unregenerable (plan.csv lists them)"
                )
            expired = result.verdicts[result.verdicts["expired"]]
            driver = make_driver(config, expired[["namespace", "repo", "repo_id", "tag"]])
            check_whitelist(config, driver)
            window = check_bucket(config)
        except (BadInput, CheckFailed) as exc:
            logger.error("run blocked before any change: %s", exc)
            journal.finish("BLOCKED", str(exc))
            return Failed(message=f"BLOCKED: {exc}", data=summary.model_dump(mode="json"))

        # ---- the change: freeze, GC, watch ------------------------------------------------
        before = sample_bucket(config, ledger, run_id, "before")
        summary.storage = StorageSummary(before_bytes=before.storage_bytes, samples=1)
        _write_deleted_tags(expired, journal)
        summary.gc = GcSummary(driver=driver.name)
        frozen = True  # from here on, `finally` thaws (the ledger knows what to restore)
        freeze_bucket(config, ledger, run_id)
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
        verification = verify_deletions(result.verdicts, expired, after_tags)
        summary.checks.unexpected_deletions = len(verification.unexpected)
        summary.checks.missed_deletions = len(verification.missed)
        end = window_end(finished_at, window)
        summary.storage.window_end = end.strftime("%Y-%m-%dT%H:%M:%SZ") if end else None
        journal.update_run(window_end=end)
        after = sample_bucket(config, ledger, run_id, "after")
        summary.storage.samples = 2
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
            try:
                status = driver.cancel(running_task)
                if status is not None and row_id is not None:
                    summary.gc.state, summary.gc.tags_deleted = status.state, status.tags_deleted
                    record_gc_status(ledger, row_id, status)
            except Exception as cancel_error:
                logger.error("could not cancel GC task %s: %s", running_task, cancel_error)
        cancelled = not isinstance(exc, Exception)
        if cancelled and summary.gc is not None and summary.gc.task_id and summary.checks.unexpected_deletions is None:
            # Prefect's SIGTERM usually lands before the watch loop sees CANCELLING: the
            # partial deletions still get checked against the plan and reported.
            try:
                verification = verify_deletions(result.verdicts, expired, _tags_now(config))
                summary.checks.unexpected_deletions = len(verification.unexpected)
                summary.checks.missed_deletions = len(verification.missed)
                if len(verification.unexpected):
                    logger.error("GC deleted %d tag(s) outside the verified plan: %s", len(verification.unexpected),
                                 ", ".join(f"{r.namespace}/{r.repo}:{r.tag}" for r in verification.unexpected.itertuples()))
            except Exception as verify_error:
                logger.error("could not verify the partial deletions: %s", verify_error)
        message = _one_line(exc)
        if cancelled and summary.gc is not None and summary.gc.task_id:
            message = (f"cancelled ({message}): GC task {summary.gc.task_id} {summary.gc.state}, "
                       f"{summary.gc.tags_deleted} planned tag(s) deleted")
        if frozen:  # whatever freeze.hold_until says: a failed or cancelled run lets go
            frozen = not _thaw_now(config, ledger, summary, logger)
        journal.finish("CANCELED" if cancelled else "FAILED", message)
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


def _thaw_now(config: Config, ledger: Ledger, summary: Summary, logger) -> bool:
    """Thaw, record whether every freeze is undone; False when the API did not answer."""
    try:
        thaw_bucket(config, ledger)
    except CloudError as exc:
        logger.error("thaw failed (%s): run `acr-gc thaw --config …` once the API answers", exc)
        return False
    summary.checks.freeze_restored = not outstanding_freezes(ledger, config.target.bucket)
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
