"""The ``acr-gc`` command line (DESIGN section 10).

Every command that writes a run folder prints that folder's path as the last line of
its standard output. Bad input exits 2 with one clear line on standard error.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Safe storage reclamation for ACR EE.")
emulator_app = typer.Typer(no_args_is_help=True, help="The local ACR + OSS emulator.")
app.add_typer(emulator_app, name="emulator")


def fail(message: str, code: int = 2) -> None:
    """Print one line on stderr and exit; used for every bad-input path."""
    typer.echo(f"acr-gc: {message}", err=True)
    raise typer.Exit(code)


@emulator_app.command("serve")
def emulator_serve(
    dataset: Path = typer.Option(..., "--dataset", help="dataset JSON (see DESIGN section 10)"),
    host: str = typer.Option("127.0.0.1", "--host"),
    acr_port: int = typer.Option(9101, "--acr-port", help="0 picks a free port"),
    oss_port: int = typer.Option(9102, "--oss-port", help="0 picks a free port"),
    day_seconds: float = typer.Option(86400.0, "--day-seconds", help="real seconds per emulated day"),
    latency_ms: float = typer.Option(0.0, "--latency-ms"),
    qps: float = typer.Option(0.0, "--qps", help="requests per second before throttling; 0: no limit"),
    fault_rate: float = typer.Option(0.0, "--fault-rate", help="share of requests answered 503 or dropped"),
    seed: int = typer.Option(0, "--seed"),
    gc_tags_per_second: float = typer.Option(200.0, "--gc-tags-per-second"),
) -> None:
    """Serve the emulator; prints one JSON line with the endpoints when ready."""
    from acr_gc.emulator.dataset import load_dataset
    from acr_gc.emulator.server import ServerOptions, serve

    try:
        data = load_dataset(dataset)
    except ValueError as exc:
        fail(_first_error(exc))
    if not 0 <= fault_rate < 1:
        fail("--fault-rate must be in [0, 1)")
    if day_seconds <= 0:
        fail("--day-seconds must be positive")
    serve(
        data,
        ServerOptions(
            host=host,
            acr_port=acr_port,
            oss_port=oss_port,
            day_seconds=day_seconds,
            latency_ms=latency_ms,
            qps=qps,
            fault_rate=fault_rate,
            seed=seed,
            gc_tags_per_second=gc_tags_per_second,
        ),
    )


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

    Exit 0 when the gate passes, 3 when it blocks (the blocking tags are listed), 2 on
    bad input.
    """
    config = _load(config_path)
    if out is not None:
        config = config.model_copy(update={"report": config.report.model_copy(update={"out_dir": out})})
    from acr_gc.cloud.errors import CloudError
    from acr_gc.tasks.preflight import BadInput, preflight

    try:
        preflight(config)
    except BadInput as exc:
        fail(str(exc))
    except CloudError as exc:
        fail(str(exc), code=1)

    from acr_gc.flows.plan import plan_instance
    from acr_gc.reports.console import print_blocking, print_plan_table

    outcome = plan_instance(config)
    print_plan_table(outcome.result)
    if not outcome.result.gate.passed:
        print_blocking(outcome.result.gate.blocking)
    typer.echo(str(outcome.folder))
    raise typer.Exit(0 if outcome.result.gate.passed else 3)


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    app()
