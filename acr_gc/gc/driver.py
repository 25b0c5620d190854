"""The ``GcDriver`` port and the choice of adapter."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import pandas as pd

    from acr_gc.config import Config
    from acr_gc.cloud.acr import AcrClient

TERMINAL_STATES = frozenset({"SUCCESS", "FAILED", "CANCELED"})


@dataclass(frozen=True)
class GcStatus:
    """A GC task as the port reports it, whichever adapter runs it."""

    task_id: str
    state: str  # PENDING | RUNNING | SUCCESS | FAILED | CANCELED
    progress: int
    tags_deleted: int
    objects_deleted: int
    bytes_deleted: int
    created: datetime | None = None
    finished: datetime | None = None
    tags_planned: int | None = None
    error: str | None = None
    client_token: str | None = None  # what the start that created it was called with, where the API tells

    @property
    def active(self) -> bool:
        return self.state in ("PENDING", "RUNNING")


class GcDriver(Protocol):
    """What the flow needs of a GC task, whoever runs it."""

    name: str

    def is_enabled(self) -> bool:
        """Whether the instance may run GC at all (the one-time whitelist ticket)."""

    def active_task(self) -> GcStatus | None:
        """The instance's PENDING or RUNNING task, if any: a re-run attaches to it."""

    def started_task(self, client_token: str | None) -> GcStatus | None:
        """The task a start called with ``client_token`` created, in whatever state (ended
        too), where the adapter's API tells; else the instance's active task, if any."""

    def start(self, client_token: str | None = None) -> GcStatus:
        """Start a task, or attach to the active one; never a second concurrent task.
        ``client_token`` (the ledger's intent row carries it) makes a repeated start answer
        the task the first one started, where the adapter's API can."""

    def status(self, task_id: str) -> GcStatus: ...

    def cancel(self, task_id: str) -> GcStatus | None: ...


def make_driver(config: "Config", acr: "AcrClient", planned_deletions: "pd.DataFrame | None" = None) -> GcDriver:
    """The driver the config names, calling ACR through ``acr`` (the run's adapter).
    ``planned_deletions`` (namespace, repo, repo_id, tag) lets the console driver measure
    progress from the public API."""
    if config.gc.driver == "emulator":
        from acr_gc.gc.emulator import EmulatorGcDriver

        return EmulatorGcDriver(acr)
    from acr_gc.gc.console import ConsoleGcDriver

    return ConsoleGcDriver(config, acr, planned_deletions)
