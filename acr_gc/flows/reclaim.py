"""``reclaim_storage``: one instance through the whole procedure (DESIGN section 2).

instance lock → inventory → plan → gate → whitelist → bucket → baseline sample → freeze →
re-check → GC → watch → thaw → verify → report. Nothing in the cloud changes before every
check has passed. The freeze has one owner, ``bucket_frozen``: it thaws on every way out,
but never while GC may still run (then ``acr-gc sample`` or ``acr-gc thaw`` thaws once it
has ended, as for a process that was killed). One run per instance at a time (the
ledger's instance lock); a run that finds a killed run's GC task takes it over, with that
run's plan, instead of starting a second one (only a task that exists: a start whose task
never came is planned afresh). The run's cloud adapters are built once, at its start
(:class:`~acr_gc.cloud.clients.CloudClients`: one credentials resolution, one Block read),
and each step is handed the one it uses.
"""

import logging
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone

import pandas as pd
from prefect import flow, get_run_logger
from prefect.client.orchestration import get_client
from prefect.context import FlowRunContext
from prefect.states import Cancelled, Completed, Failed, State
from prefect.task_runners import ThreadPoolTaskRunner

from acr_gc import notify, rules
from acr_gc.cloud.clients import CloudClients
from acr_gc.config import Config
from acr_gc.flows.approval import Rejected, approve_plan
from acr_gc.gc import TERMINAL_STATES, GcStatus, make_driver
from acr_gc.ledger import Ledger, Sample
from acr_gc.ledger import runs
from acr_gc.ledger.gc_tasks import record_gc_status
from acr_gc.ledger.instance_lock import InstanceBusy, InstanceLease, acquire
from acr_gc.ledger.plans import load_rule_table, save_plan, save_rule_table
from acr_gc.ledger.samples import copy_baseline
from acr_gc.reports import files
from acr_gc.reports.console import printable  # names from the API reach terminals and logs
from acr_gc.reports.summary import (
    CostSummary,
    GcSummary,
    PlanSummary,
    StorageSummary,
    Summary,
)
from acr_gc.ledger.states import GC_ENDED, RunState
from acr_gc.rules.verification import Verification, readings_consistent, verify_deletions
from acr_gc.rules.window import window_end
from acr_gc.seat import seat
from acr_gc.tasks import inventory as inv
from acr_gc.tasks.checks import CheckFailed, check_bucket, check_whitelist
from acr_gc.tasks.freeze import FrozenBucket, bucket_frozen, stray_freezes
from acr_gc.tasks.gc_run import GcOutcome, adopt_gc, start_gc, watch_gc
from acr_gc.tasks.planning import list_repositories, list_tags, plan_instance_steps
from acr_gc.tasks.preflight import BadInput, preflight
from acr_gc.tasks.recheck import recheck_before_gc
from acr_gc.tasks.sampling import baseline_sample, sample_bucket, sample_until
from acr_gc.tasks.takeover import Inherited, take_over_dead_runs

log = logging.getLogger(__name__)

DELETED_TAGS_COLUMNS = ["namespace", "repo", "tag", "digest", "size", "updated", "regenerable_by", "regenerate_from",
                        "certainty"]  # certain: every reading of the rules deletes it; possible: some do


class UnexpectedDeletions(RuntimeError):
    """GC deleted tags outside the verified plan: the one failure that must be loud."""


class _Journal:
    """The run's summary as it grows, mirrored to summary.json and the ledger's run row."""

    def __init__(self, config: Config, ledger: Ledger, run_id: str, state: RunState = RunState.RUNNING):
        self.config, self.ledger, self.run_id = config, ledger, run_id
        self.folder = files.run_dir(config.report.out_dir, config.target.instance_id, run_id)
        self.summary = Summary(
            run_id=run_id,
            instance_id=config.target.instance_id,
            bucket=config.target.bucket,
            state=RunState.FAILED,
            cost=CostSummary(currency=config.report.currency, price_per_gb_month=config.report.price_per_gb_month),
        )
        ctx = FlowRunContext.get()
        runs.open_run(
            ledger,
            run_id,
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

    def update_run(self, **fields) -> None:
        runs.update_run(self.ledger, self.run_id, **fields)

    def finish(self, state: RunState, message: str | None) -> None:
        """The run's end: summary.json first (the ledger may be what failed), then the
        ledger's row, moved to ``state`` if the table of moves allows it."""
        self.summary.state = state
        files.write_summary(self.summary, self.folder)
        runs.move_run(
            self.ledger,
            self.run_id,
            state,
            message=message,
            finished_at=datetime.now(timezone.utc),
            plan_json=self.summary.plan.model_dump_json() if self.summary.plan else None,
            checks_json=self.summary.checks.model_dump_json(),
            gc_json=self.summary.gc.model_dump_json(),
        )


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


@flow(name="reclaim-storage", task_runner=ThreadPoolTaskRunner(max_workers=8))
def reclaim_storage(config: Config, run_id: str | None = None) -> State:
    logger = get_run_logger()
    run_id = run_id or files.new_run_id()
    ledger = Ledger(config.ledger.url)
    clients = CloudClients.from_config(config)  # once per run; never a parameter (not serialisable)
    try:
        lease = acquire(ledger, config.target.instance_id, run_id)
    except InstanceBusy as exc:
        logger.error("run blocked before any change: %s", exc)
        journal = _Journal(config, ledger, run_id, state=RunState.BLOCKED)
        journal.finish(RunState.BLOCKED, str(exc))
        notify.send(config, RunState.BLOCKED, journal.summary.model_dump(mode="json"), journal.folder, str(exc))
        return Failed(message=f"BLOCKED: {exc}", data=journal.summary.model_dump(mode="json"))
    with lease, closing(clients):
        inherited = take_over_dead_runs(ledger, config.target.instance_id, run_id,
                                        started_task=lambda token: make_driver(config, clients.acr).started_task(token))
        return _reclaim(_Run(config, clients, ledger, run_id, lease, inherited, logger))


@dataclass
class _Run:
    """One run's state as the steps fill it in; the steps below are its methods' bodies."""

    config: Config
    clients: CloudClients  # the run's adapters, built once
    ledger: Ledger
    run_id: str
    lease: InstanceLease
    inherited: Inherited | None
    logger: object
    journal: _Journal = field(init=False)
    verdicts: pd.DataFrame | None = None
    expired: pd.DataFrame | None = None
    failed_gate: rules.GateResult | None = None  # the gate, when it did not pass
    driver: object | None = None
    window: object | None = None
    adopted: GcStatus | None = None  # a killed run's GC task this run takes over, as it stands
    freeze: FrozenBucket | None = None
    row_id: int | None = None  # the ledger row of this run's GC task
    outcome: GcOutcome | None = None
    before: Sample | None = None  # the baseline sample, taken last among the checks
    window_end: datetime | None = None

    def __post_init__(self) -> None:
        self.journal = _Journal(self.config, self.ledger, self.run_id)

    @property
    def summary(self) -> Summary:
        return self.journal.summary

    def freeze_released(self, restored: bool | str) -> None:
        """summary.json's checks.freeze_restored: true, "partial", or false (still frozen)."""
        self.summary.checks.freeze_restored = restored


def _reclaim(run: _Run) -> State:
    """The procedure, one step a line (DESIGN section 2); nothing changes before the freeze."""
    config = run.config
    try:
        _plan(run)  # this run's plan, or the killed run's whose GC it takes over
        _check(run)  # gate, whitelist, bucket, stray freezes
        _approve(run)  # approval.required: a person's yes before any change
        run.before = _baseline(run)  # the storage before GC, after any wait for approval
    except (BadInput, CheckFailed) as exc:
        return _blocked(run, exc)
    except Rejected as exc:
        return _rejected(run, exc)
    with _ends_failed_or_cancelled(run):
        _prepare(run)  # plan and baseline recorded, deleted_tags.csv written: before any change
        with bucket_frozen(config, run.clients.oss, run.ledger, run.run_id, needed=_freeze_needed(run),
                           on_release=run.freeze_released, confirm=run.lease.confirm) as run.freeze:
            _recheck(run)  # rules and tags listed again: GC starts only inside the gated plan
            _start_or_adopt_gc(run)
            _watch_gc(run)
            if config.freeze.hold_until == "gc_complete":
                run.freeze.release()  # only if GC is confirmed ended
            verification = _verify(run)
            state, message = _judge(run, verification)
            if state is RunState.GC_DONE:
                _notify(run, RunState.GC_DONE)
                _sample_window(run)
            run.freeze.release()
        return _finish(run, state, message)


# ---- the steps ------------------------------------------------------------------------------


def _plan(run: _Run) -> None:
    preflight(run.config, run.clients)
    summary, inherited = run.summary, run.inherited
    if inherited is None:
        result = plan_instance_steps(run.config, run.clients)
        run.verdicts = result.verdicts
        summary.plan = PlanSummary(**result.summary)
        namespaces_json, charts = result.per_namespace().to_json(orient="records"), result.charts
        run.failed_gate = None if result.gate.passed else result.gate
    else:
        run.logger.warning("run %s was killed while its GC task %s ran: this run finishes that task against the "
                           "plan it was started from", inherited.run.run_id, inherited.task_id)
        run.verdicts = inherited.verdicts
        summary.plan = PlanSummary.model_validate_json(inherited.run.plan_json)
        namespaces_json, charts = inherited.run.namespaces_json, inherited.run.charts
    files.write_plan_csv(run.verdicts, run.journal.folder)
    if inherited is None:
        files.write_unreadable_manifests(run.verdicts, result.unreadable, run.journal.folder)
    run.journal.update_run(namespaces_json=namespaces_json, charts=charts, plan_json=summary.plan.model_dump_json())
    rule_table = result.rule_table if inherited is None else load_rule_table(run.ledger, inherited.run.run_id)
    if rule_table is not None:  # for the report: rules deleting tags by themselves are named there
        save_rule_table(run.ledger, run.run_id, rule_table)
    run.expired = run.verdicts[run.verdicts["expired"]]


def _check(run: _Run) -> None:
    if run.failed_gate is not None:
        raise CheckFailed(_gate_message(run.failed_gate))
    run.driver = make_driver(run.config, run.clients.acr, run.expired[["namespace", "repo", "repo_id", "tag"]])
    check_whitelist(run.config, run.driver)
    run.window = check_bucket(run.config, run.clients.oss)
    if run.inherited is not None and run.inherited.task_id:
        run.adopted = run.driver.status(run.inherited.task_id)
    strays = stray_freezes(run.clients.oss, run.ledger)
    if strays:
        raise CheckFailed(
            f"bucket {run.config.target.bucket} holds freeze statement(s) {', '.join(strays)} that no run in this "
            "ledger owns (another run's, or a lost ledger's): if no acr-gc run is working on this bucket, remove "
            "them with `acr-gc thaw --config <this config>`, then run again")


def _gate_message(gate: rules.GateResult) -> str:
    """Unregenerable tags (the first ten named) and/or the blast radius (repositories named)."""
    blocking, blast = gate.blocking, gate.blast_radius
    if not len(blocking):
        return f"gate blocked: {blast}"
    listed = ", ".join(f"{r.namespace}/{r.repo}:{r.tag}" for r in blocking.head(10).itertuples())
    return (f"gate blocked: {len(blocking)} expired tag(s) cannot be regenerated ({listed}"
            f"{', …' if len(blocking) > 10 else ''}); add build rules or manifest lines, or allow them "
            f"in policy.allow_unregenerable (plan.csv lists them){f'; and {blast}' if blast else ''}")


def _blocked(run: _Run, exc: Exception) -> State:
    run.logger.error("run blocked before any change: %s", printable(str(exc)))
    run.journal.finish(RunState.BLOCKED, str(exc))
    _notify(run, RunState.BLOCKED, str(exc))
    return Failed(message=f"BLOCKED: {exc}", data=run.summary.model_dump(mode="json"))


def _approve(run: _Run) -> None:
    """A run taking over a killed run's GC task does not ask again: that plan was approved."""
    if run.config.approval.required and run.inherited is None:
        approve_plan(run.config, run.ledger, run.run_id, run.summary.plan.model_dump(), run.journal.folder,
                     on_waiting=lambda text: _notify(run, notify.AWAITING_APPROVAL, text))


def _rejected(run: _Run, exc: Rejected) -> State:
    run.logger.error("run rejected before any change: %s", exc)
    run.journal.finish(RunState.REJECTED, str(exc))
    _notify(run, RunState.REJECTED, str(exc))
    return Failed(message=f"REJECTED: {exc}", data=run.summary.model_dump(mode="json"))


def _notify(run: _Run, event: str, detail: str | None = None) -> None:
    notify.send(run.config, event, run.summary.model_dump(mode="json"), run.journal.folder, detail)


def _prepare(run: _Run) -> None:
    save_plan(run.ledger, run.run_id, run.verdicts)  # a run taking over needs it
    run.summary.storage = StorageSummary(before_bytes=run.before.storage_bytes, samples=1)
    _write_deleted_tags(run.expired, run.journal)
    run.summary.gc = GcSummary(driver=run.driver.name)


def _freeze_needed(run: _Run) -> bool:
    """A taken-over task that has ended meanwhile needs no freeze: only the old one undone."""
    return run.adopted is None or run.adopted.state not in TERMINAL_STATES


def _recheck(run: _Run) -> None:
    """Right before GC starts (or a person is asked to start it): a fresh plan inside the
    gated one, or the run fails with GC never started (thawed, nothing deleted). A taken-over
    task is already running from its own plan: nothing to re-check."""
    if run.adopted is None:
        recheck_before_gc(run.config, run.clients.acr, run.verdicts)


def _start_or_adopt_gc(run: _Run) -> None:
    config, ledger, driver = run.config, run.ledger, run.driver

    def track(started: GcStatus, row_id: int) -> None:
        """The freeze knows of the task before the ledger is written again (see start_gc)."""

        def stop():
            status = driver.cancel(started.task_id)
            if status is not None:
                try:
                    record_gc_status(ledger, row_id, status)
                except Exception as exc:
                    run.logger.error("GC task %s is %s, but the ledger did not take it: %s", started.task_id,
                                     status.state, exc)
            return status

        run.freeze.gc_started(started, stop)
        run.row_id = row_id
        run.summary.gc.task_id = started.task_id

    if run.adopted is not None:
        started, _ = adopt_gc(config, ledger, run.run_id, driver, run.adopted.task_id, on_started=track)
    else:
        run.lease.confirm("the start of GC")
        started, _ = start_gc(config, ledger, run.run_id, driver, on_started=track)
    run.journal.update_run(gc_started_at=started.created or datetime.now(timezone.utc))


def _watch_gc(run: _Run) -> None:
    started = run.freeze.status
    bar = seat().progress("GC", total=len(run.expired), unit="tags deleted")

    def seen(status: GcStatus) -> None:
        run.freeze.gc_seen(status)
        bar.update(status.tags_deleted or 0)

    try:
        run.outcome = watch_gc(run.config, run.ledger, run.driver, started, run.row_id,
                               cancel_requested=_cancel_requested, on_progress=seen)
    finally:
        bar.close()
    status = run.outcome.status
    run.freeze.gc_seen(status)
    run.summary.gc.state, run.summary.gc.tags_deleted = status.state, status.tags_deleted
    run.journal.update_run(gc_finished_at=status.finished or datetime.now(timezone.utc))


def _verify(run: _Run) -> Verification:
    """Deleted ⊆ plan, the window's end, and the first "after" sample."""
    summary = run.summary
    verification = verify_deletions(run.verdicts, run.expired, _tags_now(run.config, run.clients))
    summary.checks.unexpected_deletions = len(verification.unexpected)
    summary.checks.missed_deletions = len(verification.missed)
    if run.outcome.status.state == "SUCCESS" and "deleted_max" in run.verdicts:  # which readings the cloud followed
        summary.checks.readings_consistent = readings_consistent(run.verdicts, verification.deleted)
    end = window_end(run.outcome.status.finished or datetime.now(timezone.utc), run.window)
    summary.storage.window_end = end.strftime("%Y-%m-%dT%H:%M:%SZ") if end else None
    run.journal.update_run(window_end=end)
    run.window_end = end
    after = sample_bucket(run.clients.oss, run.ledger, run.run_id, "after")
    if after is not None:  # None: the lagging statistics predate the series' latest sample
        summary.storage.samples += 1
        summary.storage.after_bytes = after.storage_bytes
    if len(verification.unexpected):
        listed = ", ".join(f"{r.namespace}/{r.repo}:{r.tag}" for r in verification.unexpected.itertuples())
        files.write_csv(verification.unexpected, run.journal.folder / "unexpected_deletions.csv")
        raise UnexpectedDeletions(
            f"GC deleted {len(verification.unexpected)} tag(s) outside the verified plan: {listed}"
        )
    return verification


def _judge(run: _Run, verification: Verification) -> tuple[RunState, str | None]:
    """The run's state from how GC ended. A task cancelled because it passed gc.timeout is
    a failed run, not a cancelled one."""
    outcome, summary = run.outcome, run.summary
    status = outcome.status
    if not outcome.timed_out and (outcome.cancelled_by_flow or status.state == "CANCELED"):
        return RunState.CANCELED, (f"GC task {status.task_id} was cancelled; {summary.gc.tags_deleted} planned tag(s) "
                            f"deleted, {len(verification.missed)} left")
    if status.state != "SUCCESS" or outcome.timed_out:
        running = status.state not in TERMINAL_STATES
        why = status.error or ("left running (gc.on_timeout: leave)" if running else "see the driver")
        return RunState.FAILED, (f"GC task {status.task_id} {'is still' if running else 'ended'} {status.state}"
                          f"{' after gc.timeout' if outcome.timed_out else ''}: {why}")
    if len(verification.missed):
        run.logger.warning("%d planned tag(s) are still present after GC", len(verification.missed))
    return RunState.GC_DONE, None


def _sample_window(run: _Run) -> None:
    """Inline: sample until the release window closes. Scheduled: the daily sampler does,
    and thaws at the window's end when freeze.hold_until says so."""
    config, summary = run.config, run.summary
    if config.sampling.mode == "inline":
        run.logger.info("sampling inline until the release window closes at %s", summary.storage.window_end)
        bar = seat().progress("sampling", total=None, unit="days sampled")
        try:
            samples = sample_until(config, run.clients.oss, run.ledger, run.run_id, run.window_end,
                                   on_sample=_days_of(run, bar))
        finally:
            bar.close()
        summary.storage.samples += len(samples)
        summary.storage.after_bytes = samples[-1].storage_bytes
    elif config.freeze.hold_until == "window_end":
        run.freeze.keep_until_window_end()


def _days_of(run: _Run, bar) -> Callable[[Sample], None]:
    """Days of the release window sampled so far (cloud days), for the terminal's bar."""
    first: list[datetime] = []

    def sampled(sample: Sample) -> None:
        if not first:
            first.append(sample.taken_at)
        window = (run.window_end - first[0]).total_seconds() / 86400 if run.window_end else None
        done = (sample.taken_at - first[0]).total_seconds() / 86400
        bar.update(round(min(done, window) if window else done, 1), None if window is None else round(window, 1))

    return sampled


def _finish(run: _Run, state: RunState, message: str | None) -> State:
    message = _with_freeze_note(run, message)
    run.journal.finish(state, message)
    reported = _report(run.ledger, run.run_id, run.journal)
    data = reported.model_dump(mode="json")
    if reported.state is not RunState.GC_DONE:  # GC_DONE was told when GC ended
        notify.send(run.config, reported.state, data, run.journal.folder, message)
    if reported.state in GC_ENDED:
        return Completed(message=reported.state.value, data=data)
    if state is RunState.CANCELED:
        return Cancelled(message=message, data=data)
    return Failed(message=message, data=data)


def _with_freeze_note(run: _Run, message: str | None) -> str | None:
    if run.freeze is None or not run.freeze.gc_may_run:
        return message
    note = (f"the bucket stays frozen while GC task {run.freeze.task_id} may still run: `acr-gc sample` or "
            "`acr-gc thaw --config …` thaws it once the task has ended")
    return f"{message}; {note}" if message else note


@contextmanager
def _ends_failed_or_cancelled(run: _Run) -> Iterator[None]:
    """An error, or Prefect's cancellation arriving as a signal, after the checks: the run
    ends FAILED or CANCELED with summary.json written (the ledger may be what failed), and
    a GC that ran is still verified (on cancellation) and reported. ``bucket_frozen`` has
    already stopped our GC task and thawed, or kept the bucket frozen while GC may run."""
    try:
        yield
    except BaseException as exc:
        summary, cancelled = run.summary, not isinstance(exc, Exception)
        status = run.freeze.status if run.freeze is not None else None
        if status is not None and summary.gc is not None:
            summary.gc.state, summary.gc.tags_deleted = status.state, status.tags_deleted
        if cancelled and summary.gc is not None and summary.gc.task_id and summary.checks.unexpected_deletions is None:
            _verify_partial(run)  # SIGTERM usually lands before the watch loop sees CANCELLING
        message = _one_line(exc)
        if cancelled and summary.gc is not None and summary.gc.task_id:
            message = (f"cancelled ({message}): GC task {summary.gc.task_id} {summary.gc.state}, "
                       f"{summary.gc.tags_deleted} planned tag(s) deleted")
        message = _with_freeze_note(run, message)
        try:
            run.journal.finish(RunState.CANCELED if cancelled else RunState.FAILED, message)
        except Exception as finish_error:  # summary.json is written first; the ledger may be what failed
            run.logger.error("could not record the run's end in the ledger: %s", finish_error)
        if summary.gc is not None and summary.gc.task_id:
            try:  # GC ran: the partial result is still reported
                _report(run.ledger, run.run_id, run.journal)
            except Exception as report_error:
                run.logger.error("could not render the report: %s", report_error)
        _notify(run, RunState.CANCELED if cancelled else RunState.FAILED, message)
        raise


def _verify_partial(run: _Run) -> None:
    """The partial deletions of a cancelled GC, still checked against the plan."""
    summary = run.summary
    try:
        verification = verify_deletions(run.verdicts, run.expired, _tags_now(run.config, run.clients))
    except Exception as verify_error:
        run.logger.error("could not verify the partial deletions: %s", verify_error)
        return
    summary.checks.unexpected_deletions = len(verification.unexpected)
    summary.checks.missed_deletions = len(verification.missed)
    if len(verification.unexpected):
        run.logger.error("GC deleted %d tag(s) outside the verified plan: %s", len(verification.unexpected),
                         printable(", ".join(f"{r.namespace}/{r.repo}:{r.tag}"
                                             for r in verification.unexpected.itertuples())))


def _baseline(run: _Run) -> Sample:
    """The storage before GC: measured now (waiting, within bounds, for lagging statistics to
    cover this moment), or — taking over a killed run's GC — that run's."""
    config, ledger, run_id, inherited = run.config, run.ledger, run.run_id, run.inherited
    if inherited is None:
        return baseline_sample(config, run.clients.oss, ledger, run_id)
    return copy_baseline(ledger, inherited.before, run_id)


def _report(ledger: Ledger, run_id: str, journal: _Journal) -> Summary:
    """A closed window first makes the run COMPLETE (in the ledger); then the report files
    and artifacts from the ledger, and a complete window adds the savings row. Returns the
    summary.json written."""
    from acr_gc.reports.build import finalize_savings, render_report

    runs.close_window(ledger, run_id)
    _, reported = render_report(ledger, run_id)
    finalize_savings(ledger, run_id)
    journal.summary.state = reported.state
    return reported


def _one_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0][:500]


def _write_deleted_tags(expired: pd.DataFrame, journal: _Journal) -> None:
    """Every tag GC may delete, with how to regenerate it, written before GC starts."""
    frame = expired.rename(columns={"image_size": "size"}).assign(
        updated=expired["updated"].dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
        certainty=expired["certainty"] if "certainty" in expired else rules.CERTAIN,
    )
    files.write_csv(frame[DELETED_TAGS_COLUMNS].sort_values(["namespace", "repo", "tag"]), journal.folder / "deleted_tags.csv")


def _tags_now(config: Config, clients: CloudClients) -> pd.DataFrame:
    """The instance's tags after GC, read the same way as the inventory."""
    repositories = list_repositories(clients.acr)
    frames = [list_tags(clients.acr, batch, config.api.concurrency) for batch in inv.batches(repositories, 100)]
    return pd.concat(frames, ignore_index=True) if frames else inv.tags_frame([])
