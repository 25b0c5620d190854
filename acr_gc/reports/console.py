"""What the terminal shows: short tables, not files.

Names come from the registry's API, and a name could hold terminal control sequences
(ESC ... clears the screen, retitles the window) or a right-to-left override that turns
the rest of the line around; :func:`printable` shows those characters as escapes.
"""

from __future__ import annotations

import pandas as pd
import typer

from acr_gc.rules.plan_result import PlanResult

MAX_LISTED = 50


def printable(text: str) -> str:
    """``text`` with every character the terminal would act on instead of show written as
    its Python escape (``\\x1b``, ``\\u202e``); letters of any script and emoji stay."""
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)


def human_bytes(n: int | float) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:,.0f} {unit}" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def print_plan_table(result: PlanResult) -> None:
    table = result.per_namespace()
    total = pd.DataFrame(
        [{
            "namespace": "TOTAL",
            "tags": int(table["tags"].sum()),
            "expired": int(table["expired"].sum()),
            "unregenerable": int(table["unregenerable"].sum()),
            "expected_bytes": result.bytes_expected,
        }]
    )
    shown = pd.concat([table, total], ignore_index=True)
    shown["namespace"] = shown["namespace"].map(printable)
    shown["expected"] = shown["expected_bytes"].map(human_bytes)
    typer.echo(shown[["namespace", "tags", "expired", "unregenerable", "expected"]].to_string(index=False))
    if result.expected.is_upper_bound:
        typer.echo(
            "expected bytes are an upper bound (layers unknown: image sizes counted once per digest, "
            "the total capped at the bucket's size; namespace rows are not capped)"
        )
    if result.bytes_unreferenced_before:
        typer.echo(f"already unreferenced before the run: {human_bytes(result.bytes_unreferenced_before)} "
                   "(blobs no tag reaches; GC frees them too)")
    if result.unreadable:
        typer.echo(f"{len(result.unreadable)} manifest(s) could not be read: counted by image size "
                   "(unreadable_manifests.csv lists them)")
    if result.charts:
        typer.echo(f"{result.charts} chart repositories: never reclaimed by GC")


def print_blocking(blocking: pd.DataFrame) -> None:
    typer.echo(f"gate BLOCKED: {len(blocking)} expired tag(s) cannot be regenerated and are not allowed:", err=True)
    for row in blocking.head(MAX_LISTED).itertuples(index=False):
        typer.echo(printable(f"  {row.namespace}/{row.repo}:{row.tag} {row.digest}"), err=True)
    if len(blocking) > MAX_LISTED:
        typer.echo(f"  … and {len(blocking) - MAX_LISTED} more (see plan.csv, regenerable_by = none)", err=True)
    typer.echo(
        "next step: add a build rule or a regeneration manifest line for them, or allow them "
        "explicitly in policy.allow_unregenerable",
        err=True,
    )
