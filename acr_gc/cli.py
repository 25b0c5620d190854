"""The ``acr-gc`` command line (DESIGN section 10).

Every command that writes a run folder prints that folder's path as the last line of
its standard output. Bad input exits 2 with one clear line on standard error.
"""

from __future__ import annotations

import atexit
import gc
import json
import sys
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Safe storage reclamation for ACR EE.")
emulator_app = typer.Typer(no_args_is_help=True, help="The local ACR + OSS emulator.")
app.add_typer(emulator_app, name="emulator")


@app.callback()
def _every_command(ctx: typer.Context) -> None:
    """Prefect's environment defaults (telemetry off, acr-gc's loggers forwarded to the
    flow run's logs, more retries of the API's 503s), set before anything imports Prefect
    (the user's own values win); and a temporary Prefect server, if the command started
    one, stopped when it ends."""
    from acr_gc.prefect_api import quiet_defaults, stop_temporary_server

    quiet_defaults()
    atexit.unregister(gc.freeze)  # once per process, also when the CLI is called in-process
    atexit.register(gc.freeze)  # registered before Prefect's handlers, so it runs last: see _freeze_heap
    ctx.call_on_close(stop_temporary_server)


def fail(message: str, code: int = 2) -> None:
    """Print one line on stderr and exit; used for every bad-input path."""
    typer.echo(f"acr-gc: {message}", err=True)
    raise typer.Exit(code)


def _start_prefect_api() -> None:
    """First thing in a command that runs flows: find the Prefect API, or start the
    temporary server now so that it boots while the command reads its config and imports
    its flows (acr_gc/prefect_api.py says why)."""
    from acr_gc.prefect_api import use_prefect_api

    use_prefect_api()


def _prefect_api_ready() -> None:
    """Right before the first flow call: the API answers, or one line says why not (exit 1)."""
    from acr_gc.prefect_api import PrefectApiUnavailable, wait_for_prefect_api

    try:
        wait_for_prefect_api()
    except PrefectApiUnavailable as exc:
        fail(str(exc), code=1)
    _freeze_heap()


def _freeze_heap() -> None:
    """Keep what is on the heap now (the imported modules, the config: they live until the
    process exits) out of every later garbage collection.

    A command imports Prefect, pandas, SQLAlchemy and the SDKs before its first flow call:
    hundreds of thousands of objects that every full collection would walk again while
    the flow builds its tables, and that the interpreter walks once more on its way out
    (0.5 s of a 16 s ``acr-gc plan``, benchmarks/README.md). ``gc.freeze`` moves them to
    the permanent generation; the same call at exit (registered by ``_every_command``)
    spares the final collections, whose only work would be to free memory the operating
    system takes back anyway. Files are closed by the code that writes them, and logging's
    own exit handler flushes its handlers before this runs.
    """
    gc.freeze()


@emulator_app.command("serve")
def emulator_serve(
    dataset: Optional[Path] = typer.Option(None, "--dataset", help="dataset JSON (see DESIGN section 10)"),
    restore: Optional[Path] = typer.Option(
        None, "--restore", help="start from a GET /_emulator/dump document instead of a dataset"
    ),
    host: str = typer.Option("127.0.0.1", "--host"),
    acr_port: int = typer.Option(9101, "--acr-port", help="0 picks a free port"),
    oss_port: int = typer.Option(9102, "--oss-port", help="0 picks a free port"),
    registry_port: int = typer.Option(9103, "--registry-port", help="the OCI distribution API; 0 picks a free port"),
    day_seconds: Optional[float] = typer.Option(None, "--day-seconds", help="real seconds per emulated day [86400]"),
    latency_ms: Optional[float] = typer.Option(None, "--latency-ms", help="[0]"),
    qps: Optional[float] = typer.Option(None, "--qps", help="requests per second before throttling; 0: no limit [0]"),
    fault_rate: Optional[float] = typer.Option(None, "--fault-rate", help="share of requests answered 503 or dropped [0]"),
    seed: Optional[int] = typer.Option(None, "--seed", help="[0]"),
    gc_tags_per_second: float = typer.Option(200.0, "--gc-tags-per-second"),
    combination: str = typer.Option("any-retains", "--combination", help="any-retains | each-rule"),
    count_regexp: str = typer.Option("count-or-match", "--count-regexp",
                                     help="count-or-match | count-among-matching"),
    regexp_match: str = typer.Option("full", "--regexp-match", help="full | partial"),
    stat_delay_hours: Optional[float] = typer.Option(
        None, "--stat-delay-hours", help="GetBucketStat answers the figures of this many emulated hours ago [0]"),
) -> None:
    """Serve the emulator; prints one JSON line with the endpoints when ready.

    With --restore the clock and the fault settings come from the dump, so the flags that
    set them are refused there (change faults afterwards with POST /_emulator/faults)."""
    from acr_gc.emulator.dataset import Dataset, load_dataset
    from acr_gc.emulator.retention import Readings
    from acr_gc.emulator.server import ServerOptions, serve
    from acr_gc.emulator.state import EmulatorState, InvalidDump

    try:  # the readings of the lifecycle rules the emulator plays (DESIGN section 3)
        Readings(combination, count_regexp, regexp_match)
    except ValueError as exc:
        fail(str(exc))

    if (dataset is None) == (restore is None):
        fail("give exactly one of --dataset FILE and --restore FILE")
    state_flags = {"--day-seconds": day_seconds, "--latency-ms": latency_ms, "--qps": qps,
                   "--fault-rate": fault_rate, "--seed": seed, "--stat-delay-hours": stat_delay_hours}  # fmt: skip
    dump = None
    if restore is not None:
        given = [flag for flag, value in state_flags.items() if value is not None]
        if given:
            fail(f"{given[0]} cannot be combined with --restore: the dump carries the clock and the fault settings")
        try:
            dump = json.loads(restore.read_text(encoding="utf-8"))
            if isinstance(dump, dict) and dump.get("secrets") is False:
                fail(f"{restore}: invalid dump: {EmulatorState.WITHOUT_SECRETS}")
            data = Dataset.model_validate(dump["start_dataset"])
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
            fail(_first_error(exc).replace("invalid dataset", f"invalid dump {restore}"))
    else:
        try:
            data = load_dataset(dataset)
        except ValueError as exc:
            fail(_first_error(exc))
    options = ServerOptions(
        host=host,
        acr_port=acr_port,
        oss_port=oss_port,
        registry_port=registry_port,
        day_seconds=86400.0 if day_seconds is None else day_seconds,
        latency_ms=latency_ms or 0.0,
        qps=qps or 0.0,
        fault_rate=fault_rate or 0.0,
        seed=seed or 0,
        gc_tags_per_second=gc_tags_per_second,
        combination=combination,
        count_regexp=count_regexp,
        regexp_match=regexp_match,
        stat_delay_hours=stat_delay_hours or 0.0,
    )
    if options.stat_delay_hours < 0:
        fail("--stat-delay-hours must be >= 0")
    if not 0 <= options.fault_rate < 1:
        fail("--fault-rate must be in [0, 1)")
    if options.day_seconds <= 0:
        fail("--day-seconds must be positive")
    try:
        serve(data, options, restore=dump)
    except InvalidDump as exc:
        fail(f"{restore}: {exc}")


def _first_error(exc: Exception) -> str:
    """Fold a (possibly multi-line pydantic) error into the one line the CLI contract allows."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return "invalid dataset: " + "; ".join(lines[:3])


@emulator_app.command("generate")
def emulator_generate(
    repos: int = typer.Option(..., "--repos", min=1),
    tags_per_repo: int = typer.Option(..., "--tags-per-repo", min=0),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Write a deterministic generated dataset to standard output."""
    from acr_gc.emulator.generator import generate

    json.dump(generate(repos=repos, tags_per_repo=tags_per_repo, seed=seed), sys.stdout)
    sys.stdout.write("\n")


def _load(config_path: Path):
    """The config, or exit 2 with the one line that says what is wrong with it."""
    from acr_gc.config import ConfigError, load_config

    try:
        return load_config(config_path)
    except ConfigError as exc:
        fail(str(exc))


@app.command("plan")
def plan_command(
    config_path: Path = typer.Option(..., "--config", help="run configuration (YAML)"),
    out: Optional[Path] = typer.Option(None, "--out", help="report folder root (default: report.out_dir)"),
) -> None:
    """Inventory, retention plan and regenerability gate; changes nothing.

    Exit 0 when the gate passes, 3 when it blocks (the blocking tags are listed) or the
    bucket's storage would never drop, 2 on bad input.
    """
    _start_prefect_api()
    config = _with_out(_load(config_path), out)
    _preflight_or_exit(config)

    from acr_gc.flows.plan import plan_instance
    from acr_gc.prefect_api import without_flow_heartbeats
    from acr_gc.reports.console import print_blocking, print_plan_table, printable

    _prefect_api_ready()
    with without_flow_heartbeats():
        outcome = plan_instance(config)
    print_plan_table(outcome.result)
    if len(outcome.result.gate.blocking):
        print_blocking(outcome.result.gate.blocking)
    if outcome.result.gate.blast_radius:
        typer.echo(printable(f"gate BLOCKED: {outcome.result.gate.blast_radius}"), err=True)
    if outcome.bucket_blocked:  # rule ids come from the bucket: printable
        typer.echo(f"blocked: {printable(outcome.bucket_blocked)}")
    elif outcome.window is not None:
        typer.echo(f"release window: {outcome.window.days} day(s) after GC ({printable(outcome.window.reason)})")
    typer.echo(str(outcome.folder))
    raise typer.Exit(0 if outcome.passed else 3)


@app.command("forecast")
def forecast_command(
    config_path: Path = typer.Option(..., "--config", help="run configuration (YAML)"),
    keep: list[int] = typer.Option([], "--keep", min=0, help="a variant in which every rule retains N tags (repeatable)"),
    older_than: Optional[float] = typer.Option(None, "--older-than", min=0, help="only tags not updated for DAYS days"),
    rules_path: Optional[Path] = typer.Option(None, "--rules", help="YAML: {variant name: [rule, …]}"),
    out: Optional[Path] = typer.Option(None, "--out", help="report folder root (default: report.out_dir)"),
) -> None:
    """What-if retention rules: tags deleted, bytes freed, saving per month and unregenerable
    tags per variant (forecast.csv, forecast.png); changes nothing."""
    _start_prefect_api()
    config = _with_out(_load(config_path), out)
    rule_sets = _rule_sets(rules_path) if rules_path is not None else None
    _preflight_or_exit(config)

    from acr_gc.flows.forecast import forecast_variants
    from acr_gc.prefect_api import without_flow_heartbeats

    _prefect_api_ready()
    with without_flow_heartbeats():
        outcome = forecast_variants(config, keeps=list(keep), older_than_days=older_than, rule_sets=rule_sets)
    typer.echo(outcome.table.drop(columns=["keep"]).to_string(index=False))
    typer.echo(str(outcome.folder))


def _rule_sets(path: Path) -> dict:
    """``--rules``: a YAML mapping of variant names to lists of rules; one clear line when it is not."""
    import yaml

    from acr_gc.rules.whatif import rules_frame

    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        fail(f"--rules {path}: cannot read: {str(exc).splitlines()[0]}")
    if not isinstance(raw, dict) or not raw or not all(isinstance(v, list) for v in raw.values()):
        fail(f"--rules {path}: expected a mapping of variant names to lists of rules")
    sets = {}
    for name, rows in raw.items():
        if not all(isinstance(r, dict) for r in rows):
            fail(f"--rules {path}: variant {name!r}: each rule is a mapping")
        try:
            sets[str(name)] = rules_frame(rows, str(name))
        except ValueError as exc:
            fail(f"--rules {path}: variant {name!r}: {exc}")
    return sets


def _with_out(config, out: Optional[Path]):
    """``--out`` in place of report.out_dir, checked as the config file's value is."""
    if out is None:
        return config
    from pydantic import ValidationError

    from acr_gc.config import Report
    from acr_gc.input_errors import first_problem

    try:
        report = Report.model_validate({**config.report.model_dump(), "out_dir": out})
    except ValidationError as exc:
        fail(f"--out: {first_problem(exc, Report)}")
    return config.model_copy(update={"report": report})


def _ledger_or_exit(config):
    """The ledger, written once to be sure: one that cannot be written (locked, read-only,
    no folder) stops the command before it touches the cloud (exit 2, one line)."""
    from acr_gc.ledger import Ledger
    from acr_gc.ledger.store import LedgerUnavailable

    try:
        ledger = Ledger(config.ledger.url)
        ledger.check_writable()
    except LedgerUnavailable as exc:
        fail(str(exc))
    return ledger


def _preflight_or_exit(config) -> None:
    """The input checks before a flow starts; the flow builds its own clients (a flow run's
    parameters must serialise), so this command's are used for the checks alone."""
    from contextlib import closing

    from acr_gc.cloud.clients import CloudClients
    from acr_gc.cloud.errors import CloudError
    from acr_gc.tasks.preflight import BadInput, preflight

    try:
        with closing(CloudClients.from_config(config)) as clients:
            preflight(config, clients)
    except BadInput as exc:
        fail(str(exc))
    except CloudError as exc:
        fail(str(exc), code=1)


def run_exit_code(state: str) -> int:
    """0 when GC is done (GC_DONE, COMPLETE), 3 when the run stopped before any change
    (BLOCKED, REJECTED), 1 otherwise (FAILED, CANCELED, no summary)."""
    from acr_gc.ledger.states import RunState  # imported here: the CLI starts without pandas

    return {RunState.GC_DONE: 0, RunState.COMPLETE: 0, RunState.BLOCKED: 3, RunState.REJECTED: 3}.get(state, 1)


@app.command("run")
def run_command(
    config_path: Path = typer.Option(..., "--config", help="run configuration (YAML)"),
    out: Optional[Path] = typer.Option(None, "--out", help="report folder root (default: report.out_dir)"),
    approve: bool = typer.Option(False, "--approve", help="approve the plan in advance (approval.required); "
                                                          "without it a terminal asks y/N, no terminal means no"),
) -> None:
    """Run the whole pipeline once for the configured instance.

    Exit 0 when GC is done, 3 when a check blocked the run or its plan was not approved
    (nothing changed), 1 when the run failed or was cancelled (the bucket is thawed
    either way), 2 on bad input. On a terminal, long work shows progress bars.
    """
    _start_prefect_api()
    config = _with_out(_load(config_path), out)
    _ledger_or_exit(config).dispose()
    _preflight_or_exit(config)
    from acr_gc.flows.reclaim import reclaim_storage
    from acr_gc.reports.files import new_run_id
    from acr_gc.seat import install
    from acr_gc.terminal import TerminalSeat

    run_id = new_run_id()
    _prefect_api_ready()
    install(TerminalSeat(approve=approve))
    state = reclaim_storage(config, run_id=run_id, return_state=True)
    folder = Path(config.report.out_dir) / config.target.instance_id / run_id
    try:
        summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        fail(f"run ended {state.type.value} without a summary: {state.message}", code=1)
    _print_run_lines(summary, state.message)
    typer.echo(str(folder))
    raise typer.Exit(run_exit_code(summary["state"]))


def _print_run_lines(summary: dict, message: str | None) -> None:
    """Three lines: what happened, what storage did, what it saves."""
    from acr_gc.reports.console import human_bytes, printable

    plan = summary.get("plan") or {}
    gc = summary.get("gc") or {}
    storage = summary.get("storage") or {}
    cost = summary.get("cost") or {}
    state = summary["state"]
    first = f"state: {state}"
    if gc.get("task_id"):
        first += f"; GC task {gc['task_id']} {gc.get('state')}, {gc.get('tags_deleted')} tags deleted"
    if plan:
        first += f" of {plan['tags_expired']} planned ({plan['tags_total']} tags in all)"
    if message and run_exit_code(state) != 0:  # GC not done: the message says why
        first += f" — {printable(message.removeprefix(state + ': '))}"  # it may quote tag names
    typer.echo(first)
    if storage.get("before_bytes") is None:
        typer.echo("storage: not sampled (nothing changed)")
        typer.echo("saving: none")
        return
    line = f"storage: before {human_bytes(storage['before_bytes'])}"
    if storage.get("after_bytes") is not None:
        line += f", after {human_bytes(storage['after_bytes'])}"
    if storage.get("reclaimed_bytes") is not None:
        line += f", reclaimed {human_bytes(storage['reclaimed_bytes'])} ({storage.get('reclaimed_pct')}%)"
    if plan:
        bound = "at most " if plan.get("bytes_expected_is_upper_bound") else ""
        line += f"; expected {bound}{human_bytes(plan['bytes_expected'])}"
    typer.echo(line)
    if cost.get("saving_per_month") is not None:
        final = "" if storage.get("window_complete") else " (provisional: release window still open)"
        typer.echo(
            f"saving: {cost['saving_per_month']} {cost['currency']} per month at "
            f"{cost['price_per_gb_month']} {cost['currency']}/GiB-month{final}"
        )
    else:
        typer.echo(f"saving: not measured yet (release window ends {storage.get('window_end')})")


@app.command("thaw")
def thaw_command(
    config_path: Path = typer.Option(..., "--config", help="run configuration (YAML)"),
    force: bool = typer.Option(False, "--force", help="thaw even while a live run holds the instance or its GC "
                                                      "task may still run (e.g. a console task you saw end)"),
) -> None:
    """Take every acr-gc freeze off the bucket, once its GC task has ended.

    Freezes the ledger records get their saved original back; freeze statements it does
    not know (another folder's ledger, a lost one) are removed too. Refused (exit 3)
    while a live run holds the instance or GC may still run — writers would race the
    sweep — unless --force."""
    config = _load(config_path)
    from acr_gc.cloud.clients import CloudClients
    from acr_gc.cloud.errors import CloudError
    from acr_gc.ledger.instance_lock import live_holder
    from acr_gc.tasks.freeze import gc_may_run, thaw_bucket

    ledger = _ledger_or_exit(config)
    holder = live_holder(ledger, config.target.instance_id)
    if holder is not None and not force:
        fail(f"not thawed: run {holder.run_id} is still running (pid {holder.pid} on {holder.host}) and owns the "
             "freeze; cancel it (it thaws on its way out), or pass --force", code=3)
    clients = CloudClients.from_config(config)
    try:
        running = None if force else gc_may_run(config, ledger, clients.acr)
        if running is not None:
            fail(f"not thawed: {running}; the bucket stays frozen until it has ended — run this again then",
                 code=3)
        report = thaw_bucket(clients.oss, ledger)
    except CloudError as exc:
        fail(str(exc), code=1)
    typer.echo(f"bucket {config.target.bucket}: {report.message}")


@app.command("sample")
def sample_command(config_path: Path = typer.Option(..., "--config", help="run configuration (YAML)")) -> None:
    """One sampling pass over every open release window of the instance (scheduled mode)."""
    _start_prefect_api()
    config = _load(config_path)
    _ledger_or_exit(config).dispose()
    _preflight_or_exit(config)
    from acr_gc.flows.sample import sample_storage

    _prefect_api_ready()
    folders = sample_storage(config)
    if not folders:
        typer.echo(f"no open release window for instance {config.target.instance_id}")
        return
    for folder in folders:
        typer.echo(folder)


@app.command("report")
def report_command(
    config_path: Path = typer.Option(..., "--config", help="run configuration (YAML)"),
    run: Optional[str] = typer.Option(None, "--run", help="run id (default: the latest finished run of the instance)"),
) -> None:
    """Re-render a run's report from the ledger (summary.json, samples.csv, storage.png,
    report.md, report.html), and add its savings.csv row if its window has closed."""
    _start_prefect_api()
    config = _load(config_path)
    from acr_gc.ledger.runs import close_window, get_run, latest_finished_run_id
    from acr_gc.ledger.urls import shown_url
    from acr_gc.reports.build import ReportError, finalize_savings, render_report
    from acr_gc.reports.render import gib, money, pct

    ledger = _ledger_or_exit(config)
    url = shown_url(config.ledger.url)  # never a password on screen
    instance = config.target.instance_id
    run_id = run or latest_finished_run_id(ledger, instance)
    if run_id is None:
        fail(f"no finished run of instance {instance} in the ledger {url}")
    row = get_run(ledger, run_id)
    owner = row.instance_id if row is not None else None
    if owner is None:
        fail(f"no run {run_id!r} in the ledger {url}")
    if owner != instance:
        fail(f"run {run_id} belongs to instance {owner}, not to the configured {instance}")
    _prefect_api_ready()
    try:
        close_window(ledger, run_id)  # a window that has closed makes the run COMPLETE before it is rendered
        folder, rendered = render_report(ledger, run_id)
        final = finalize_savings(ledger, run_id)
    except ReportError as exc:
        fail(f"run {run_id}: {exc}")
    summary = rendered.model_dump(mode="json")
    if final:  # this command made the report final: told once, as the sampler would
        from acr_gc import notify

        notify.send(config, rendered.state, summary, folder, "the release window closed: the report is final")
    storage, cost = summary["storage"], summary["cost"]
    typer.echo(f"state: {summary['state']}" + ("" if storage["window_complete"] else " (window not complete: provisional)"))
    if storage["reclaimed_bytes"] is not None:
        typer.echo(
            f"reclaimed: {gib(storage['reclaimed_bytes'])} ({pct(storage['reclaimed_pct'])}), "
            f"saving {money(cost['saving_per_month'], cost['currency'])} per month"
        )
    typer.echo(str(folder))


@app.command("status")
def status_command(
    config_path: Optional[Path] = typer.Option(None, "--config", help="run configuration (YAML): its ledger, and "
                                                                      "the cloud access to read the buckets"),
    ledger_url: Optional[str] = typer.Option(None, "--ledger", help="a ledger URL (without --config: the freeze "
                                                                    "and the clock come from the ledger only)"),
    as_json: bool = typer.Option(False, "--json", help="one JSON document for scripts"),
) -> None:
    """Where each instance in the ledger stands: last run, open release windows, a freeze
    on its bucket now, savings to date. Exit 0; 3 when a bucket is frozen and no live run
    holds its instance (thaw it: `acr-gc thaw --config …`); 2 on bad input."""
    from datetime import datetime, timezone

    from pydantic import ValidationError

    from acr_gc.cloud.clients import CloudClients
    from acr_gc.cloud.errors import CloudError
    from acr_gc.config import Ledger as LedgerSection
    from acr_gc.input_errors import first_problem
    from acr_gc.ledger import Ledger
    from acr_gc.ledger.store import LedgerUnavailable
    from acr_gc.reports.status import cloud_now, instance_status, print_status, unattended_freezes

    if config_path is None and ledger_url is None:
        fail("give --config FILE or --ledger URL")
    config = _load(config_path) if config_path is not None else None
    try:
        url = LedgerSection(url=ledger_url).url if ledger_url is not None else config.ledger.url
    except ValidationError as exc:
        fail(f"--ledger: {first_problem(exc, LedgerSection)}")
    try:
        ledger = Ledger(url)
        clients = CloudClients.from_config(config) if config is not None else None
        now = cloud_now(clients.oss) if clients is not None else datetime.now(timezone.utc)
        entries = instance_status(ledger, clients, now)
    except LedgerUnavailable as exc:
        fail(str(exc))
    except CloudError as exc:
        fail(str(exc), code=1)
    if as_json:
        typer.echo(json.dumps({"now": now.strftime("%Y-%m-%dT%H:%M:%SZ"), "instances": entries}, indent=2))
    else:
        print_status(entries, now)
    unattended = unattended_freezes(entries)
    if unattended and not as_json:
        typer.echo(f"frozen with no live run: {', '.join(unattended)}; thaw with `acr-gc thaw --config …`", err=True)
    raise typer.Exit(3 if unattended else 0)


@app.command("fleet")
def fleet_command(
    config_paths: list[Path] = typer.Option(..., "--config", help="a run configuration (YAML); once per instance"),
    slots_per_region: int = typer.Option(4, "--slots-per-region", min=1, help="instances of one region at once"),
) -> None:
    """Reclaim several instances at once: the fleet deployment's flow, one child run each.

    Refused (exit 2, before any run) when two configs name one instance or one bucket.
    Exit 0 when every instance's GC is done, 3 when the others are done and some were
    blocked before any change, 1 when any run failed or was cancelled.
    """
    _start_prefect_api()
    configs = [_load(path) for path in config_paths]
    from pydantic import TypeAdapter, ValidationError

    from acr_gc.flows.fleet import FleetConfigs, reclaim_fleet

    try:
        TypeAdapter(FleetConfigs).validate_python(configs)
    except ValidationError as exc:
        fail(f"fleet: {exc.errors()[0]['msg'].removeprefix('Value error, ')}")
    for config in configs:
        _ledger_or_exit(config).dispose()
        _preflight_or_exit(config)
    _prefect_api_ready()
    outcomes = reclaim_fleet(configs, slots_per_region)
    for outcome in outcomes:  # one line per instance: its state, and why when it says more
        why = (outcome.message or "").removeprefix(f"{outcome.state}: ").removeprefix(outcome.state)
        typer.echo(f"{outcome.instance_id}: {outcome.state}" + (f": {why}" if why else ""))
    codes = {run_exit_code(outcome.state) for outcome in outcomes}
    raise typer.Exit(1 if 1 in codes else 3 if 3 in codes else 0)


@app.command("demo")
def demo_command(
    out: Path = typer.Option(Path("reports/demo"), "--out", help="report folder root"),
) -> None:
    """The whole pipeline on the bundled emulator: plan, freeze, GC, thaw, sampling, report."""
    _start_prefect_api()
    from acr_gc.demo import run_demo
    from acr_gc.reports.files import new_run_id

    from acr_gc.prefect_api import PrefectApiUnavailable

    from acr_gc.seat import install
    from acr_gc.terminal import TerminalSeat

    run_id = new_run_id()
    install(TerminalSeat())  # progress bars; the demo's config asks for no approval
    try:
        config, state = run_demo(out, run_id)
    except PrefectApiUnavailable as exc:
        fail(str(exc), code=1)
    folder = Path(config.report.out_dir) / config.target.instance_id / run_id
    try:
        summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        fail(f"demo run ended {state.type.value} without a summary: {state.message}", code=1)
    _print_run_lines(summary, state.message)
    typer.echo(str(folder))
    if run_exit_code(summary["state"]) != 0:
        raise typer.Exit(1)


if __name__ == "__main__":  # `python -m acr_gc.cli` (the emulator subprocess)
    app()
