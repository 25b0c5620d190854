"""The ``console`` driver: GC on a real instance, where it is console-only (DESIGN 6).

ACR's public OpenAPI (2018-12-01) has no garbage-collection action, so this driver asks a
person to click in the Container Registry console and watches the result through the
public API alone:

* :meth:`ConsoleGcDriver.is_enabled` — the one-time whitelist ticket. Once an operator has
  confirmed it for an instance, that is recorded in a Prefect Variable
  (:func:`whitelist_variable_name`) and later monthly runs do not ask again. Until then the
  flow run PAUSES with a markdown artifact (key :func:`artifact_key` ``"whitelist"``) that
  gives the vendor's steps, and waits for a :class:`WhitelistInput` from the Prefect UI.
* :meth:`ConsoleGcDriver.start` — the flow run PAUSES with a markdown artifact giving the
  exact console clicks for this instance and the vendor's warnings, and waits for a
  :class:`GcStartedInput`. ``started=False`` raises :class:`GcNotStarted`.
* :meth:`ConsoleGcDriver.status` — progress from ListRepoTag: the planned expired tags that
  are gone, over those planned. Only repositories with planned deletions are listed. The
  console task's own state, object and byte counts are invisible to the public API, so
  ``objects_deleted`` and ``bytes_deleted`` are always 0 here (unknown, not zero: the report
  measures the bucket with GetBucketStat samples instead). Tag counts never end a task:
  the sweep goes on after the last tag is gone (and with no tag planned there is only a
  sweep), so once every planned tag is gone the flow run PAUSES and asks the person "has
  GC task <id> finished?" (:class:`GcFinishedInput`, key ``acr-gc-console-finished-<n>``);
  only their answer makes the state SUCCESS, FAILED or CANCELED. "Not yet" is asked again
  at the next poll. Outside a flow run (``acr-gc thaw``) the state stays RUNNING.
* :meth:`ConsoleGcDriver.cancel` — the public API cannot cancel a console task: an artifact
  asks the operator to click Cancel on the Garbage Collection page; the current status is
  returned (still RUNNING: an unconfirmed cancel leaves the bucket frozen).

Where these methods may be called: :meth:`is_enabled` and :meth:`start` pause the flow run
(``prefect.flow_runs.pause_flow_run``), so call them from the flow function itself, not from
inside a task (a pause inside a task would hold a task worker for as long as the person
takes). While paused, the flow process keeps polling the Prefect API (at most every 10 s)
and gives up after ``config.gc.timeout``, raising :class:`OperatorDidNotAnswer` (a
:class:`ConsoleGcError`); the flow's own ``finally``/hooks still run then (e.g. the thaw:
tasks still run). Prefect 3.9's server then accepts only its own final state for the run,
``Failed("The flow was failed and never resumed.")``; the driver's message is in the run's
logs (the engine logs the exception with its text).

Pause keys are fixed per question (``acr-gc-whitelist``, ``acr-gc-console-start``): within
one flow run Prefect fires a pause key once, so a second call with the same question in
the same run returns the first answer instead of asking twice.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Literal

from pydantic import Field
from prefect.input import RunInput

from acr_gc.cloud.acr import AcrClient
from acr_gc.cloud.errors import NotFound
from acr_gc.config import Config
from acr_gc.gc.driver import GcStatus
from acr_gc.reports.artifacts import artifact_key

if TYPE_CHECKING:
    import pandas as pd

PLANNED_COLUMNS = ("namespace", "repo", "repo_id", "tag")
CONSOLE_URL = "https://cr.console.aliyun.com/"
WHITELIST_PAUSE_KEY = "acr-gc-whitelist"
START_PAUSE_KEY = "acr-gc-console-start"
FINISHED_PAUSE_KEY = "acr-gc-console-finished"  # + "-<n>": asked again after "not yet"
MAX_PAUSE_POLL_S = 10.0
MAX_REPOS_IN_ARTIFACT = 50

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- errors


class ConsoleGcError(RuntimeError):
    """The console procedure could not go on; the message says what the operator should do."""


class GcNotStarted(ConsoleGcError):
    """The operator said the console GC task was not started (or never answered)."""


class OperatorDidNotAnswer(ConsoleGcError):
    """A pause for the operator timed out (``gc.timeout``)."""


# --------------------------------------------------------------------------- what the operator answers


class WhitelistInput(RunInput):
    """The answer to "is this account whitelisted for garbage collection?"."""

    whitelisted: bool = Field(
        description="True once the support ticket was accepted (or GC was already enabled for this account). "
                    "False stops this run before any change.")
    note: str = Field(default="", description="Optional: the ticket number or who confirmed it.")


class GcStartedInput(RunInput):
    """The answer to "did you start the garbage collection task in the console?"."""

    started: bool = Field(
        description="True after clicking Confirm in the console's Garbage Collection dialog. "
                    "False stops this run.")
    console_task_id: str = Field(default="", description="Optional: the task id the console shows, for the record.")
    note: str = Field(default="", description="Optional: anything worth keeping with the run.")


class GcFinishedInput(RunInput):
    """The answer to "has the garbage collection task finished?"."""

    finished: bool = Field(
        description="True once the console's Garbage Collection page shows the task ended (not just the "
                    "tags gone: the sweep of unreferenced data comes after them). False: asked again later.")
    state: Literal["SUCCESS", "FAILED", "CANCELED"] = Field(
        default="SUCCESS", description="How the task ended, as the console shows it.")
    note: str = Field(default="", description="Optional: anything worth keeping with the run.")


# --------------------------------------------------------------------------- names Prefect accepts


def _sanitised(value: str, allowed: str, filler: str) -> str:
    """Lower-case ``value`` and replace every character outside ``allowed`` with ``filler``;
    when anything had to change, a short hash of the original keeps distinct ids distinct."""
    text = value.lower()
    clean = re.sub(f"[^{allowed}]", filler, text)
    if clean != value:
        clean = f"{clean}{filler}{hashlib.sha256(value.encode()).hexdigest()[:8]}"
    return clean


def whitelist_variable_name(instance_id: str) -> str:
    """The Prefect Variable recording that ``instance_id`` may run GC.

    Variable names may hold only lower-case letters, digits, dashes and underscores
    (``prefect.types.names.VariableName``, at most 255 characters).
    """
    name = "acr_gc_gc_enabled_" + _sanitised(instance_id, "a-z0-9_-", "_")
    return name[:255]


# --------------------------------------------------------------------------- Prefect plumbing


def _logger() -> logging.Logger | logging.LoggerAdapter:
    from prefect.exceptions import MissingContextError
    from prefect.logging import get_run_logger

    try:
        return get_run_logger()
    except MissingContextError:
        return log


def _current_flow_run_id() -> str | None:
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    run = context.flow_run if context else None
    return str(run.id) if run is not None else None


def _now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class _Started:
    task_id: str
    created: datetime
    console_task_id: str
    note: str


# --------------------------------------------------------------------------- the driver


class ConsoleGcDriver:
    """A person clicks in the console; the flow watches planned tags disappear via ListRepoTag."""

    name = "console"

    def __init__(self, config: Config, acr: AcrClient, planned_deletions: "pd.DataFrame | None" = None):
        import pandas as pd

        self.config = config
        self.instance_id = config.target.instance_id
        self.region = config.target.region
        if planned_deletions is None:
            planned_deletions = pd.DataFrame(columns=list(PLANNED_COLUMNS))
        missing = [c for c in PLANNED_COLUMNS if c not in planned_deletions.columns]
        if missing:
            raise ValueError(f"planned_deletions lacks column(s) {', '.join(missing)}; "
                             f"expected {', '.join(PLANNED_COLUMNS)}")
        planned = planned_deletions.loc[:, list(PLANNED_COLUMNS)].astype(str)
        self.planned = planned.drop_duplicates(["repo_id", "tag"]).reset_index(drop=True)
        # repo_id -> (ns/repo, planned tags)
        self._by_repo: dict[str, tuple[str, frozenset[str]]] = {
            str(repo_id): (f"{group['namespace'].iloc[0]}/{group['repo'].iloc[0]}", frozenset(group["tag"]))
            for repo_id, group in self.planned.groupby("repo_id", sort=True)
        }
        self._acr = acr
        self._lock = threading.Lock()
        self._gone: dict[str, set[str]] = {repo_id: set() for repo_id in self._by_repo}
        self._started: _Started | None = None
        self._finished: datetime | None = None  # when the person confirmed the task ended
        self._ended: str | None = None  # the terminal state the person confirmed
        self._asked = 0  # "has it finished?" questions so far (each pause key fires once)

    @property
    def tags_planned(self) -> int:
        return len(self.planned)

    # -- pause helpers

    def _pause_timeout_s(self) -> int:
        return max(1, int(self.config.gc.timeout.total_seconds()))

    def _pause_poll_s(self) -> float:
        return min(MAX_PAUSE_POLL_S, max(0.1, self.config.gc.poll_interval.total_seconds()))

    def _ask(self, wait_for_input: type[RunInput], key: str, question: str):
        from prefect.exceptions import FlowPauseTimeout
        from prefect.flow_runs import pause_flow_run

        try:
            return pause_flow_run(wait_for_input=wait_for_input, timeout=self._pause_timeout_s(),
                                  poll_interval=self._pause_poll_s(), key=key)
        except FlowPauseTimeout:
            if key.startswith(FINISHED_PAUSE_KEY):
                raise OperatorDidNotAnswer(
                    f"nobody answered '{question}' for ACR instance {self.instance_id} within "
                    f"{self._pause_timeout_s()} s (gc.timeout): the bucket stays frozen; once the console shows "
                    "the task ended, run `acr-gc thaw --config … --force`") from None
            after = (" If the task was started in the console after all, it now runs unwatched: follow it on the "
                     "instance's Garbage Collection page." if key == START_PAUSE_KEY else "")
            raise OperatorDidNotAnswer(
                f"nobody answered '{question}' for ACR instance {self.instance_id} within "
                f"{self._pause_timeout_s()} s (gc.timeout); this run started nothing — run it again when "
                f"someone can follow the console steps.{after}") from None

    def _require_flow_run(self, what: str) -> None:
        if _current_flow_run_id() is None:
            raise ConsoleGcError(
                f"ConsoleGcDriver.{what}() pauses the flow run for the operator, so it must be called from "
                "the flow function of a Prefect flow run")

    # -- GcDriver

    def is_enabled(self) -> bool:
        """True when this instance's whitelist was confirmed once (Prefect Variable), or the
        operator confirms it now; False when the operator says it is not (yet) whitelisted."""
        from prefect.variables import Variable

        name = whitelist_variable_name(self.instance_id)
        recorded = Variable.get(name, default=None)
        if isinstance(recorded, dict) and recorded.get("whitelisted") is True:
            return True
        if recorded is True:
            return True

        self._require_flow_run("is_enabled")
        from prefect.artifacts import create_markdown_artifact

        create_markdown_artifact(
            markdown=self._whitelist_markdown(name),
            key=artifact_key("whitelist", self.instance_id),
            description=f"One-time GC whitelist for ACR instance {self.instance_id} ({self.region})",
        )
        _logger().warning(
            "ACR instance %s: is the account whitelisted for garbage collection? The flow run is paused: "
            "follow the 'acr-gc whitelist' artifact, then resume the run with the answer.", self.instance_id)
        answer: WhitelistInput = self._ask(WhitelistInput, WHITELIST_PAUSE_KEY, "is the account whitelisted")
        if not answer.whitelisted:
            _logger().warning("ACR instance %s: the operator says GC is not whitelisted yet%s",
                              self.instance_id, f" ({answer.note})" if answer.note else "")
            return False
        Variable.set(name, {
            "whitelisted": True,
            "instance_id": self.instance_id,
            "region": self.region,
            "recorded_at": _now().isoformat(),
            "flow_run_id": _current_flow_run_id(),
            "note": answer.note,
        }, tags=["acr-gc", "gc-whitelist"], overwrite=True)
        _logger().info("ACR instance %s: GC whitelist confirmed and recorded in Variable %s",
                       self.instance_id, name)
        return True

    def active_task(self) -> GcStatus | None:
        """Console tasks are invisible to the public API: only a task this driver started
        (in this process) and not yet seen finished is known."""
        if self._started is None or self._ended is not None:
            return None
        return self._progress(self._started.task_id)

    def started_task(self, client_token: str | None) -> GcStatus | None:
        """The console takes no client token: only the active task can be known."""
        return self.active_task()

    def start(self, client_token: str | None = None) -> GcStatus:
        """Pause until the operator says the console task was started; then RUNNING, 0 %.
        (The console takes no client token: the pause itself makes the start happen once.)"""
        if self._started is not None:  # already started by this driver: attach, never ask twice
            return self.status(self._started.task_id)

        self._require_flow_run("start")
        from prefect.artifacts import create_markdown_artifact

        create_markdown_artifact(
            markdown=self._start_markdown(),
            key=artifact_key("console-gc", self.instance_id),
            description=f"Start garbage collection in the console for ACR instance {self.instance_id} "
                        f"({self.region})",
        )
        _logger().warning(
            "ACR instance %s: start the garbage collection task in the console now (%d planned tag deletion(s)); "
            "the flow run is paused until you resume it.", self.instance_id, self.tags_planned)
        answer: GcStartedInput = self._ask(GcStartedInput, START_PAUSE_KEY, "was GC started in the console")
        if not answer.started:
            raise GcNotStarted(
                f"the operator says garbage collection was not started in the console for ACR instance "
                f"{self.instance_id}{f' ({answer.note})' if answer.note else ''}; nothing was deleted by "
                "this run — run it again to start GC")
        console_id = answer.console_task_id.strip()
        task_id = f"console-{console_id}" if console_id else f"console-{_current_flow_run_id() or uuid.uuid4()}"
        self._started = _Started(task_id=task_id, created=_now(), console_task_id=console_id, note=answer.note)
        _logger().info("ACR instance %s: console GC task %s started; watching %d planned tag(s) through ListRepoTag",
                       self.instance_id, task_id, self.tags_planned)
        return GcStatus(task_id=task_id, state="RUNNING", progress=0, tags_deleted=0, objects_deleted=0,
                        bytes_deleted=0, created=self._started.created, finished=None,
                        tags_planned=self.tags_planned)

    def status(self, task_id: str) -> GcStatus:
        """Progress from the public API; once every planned tag is gone, the person is asked
        whether the task has finished (in a flow run) — only then is the state terminal."""
        current = self._progress(task_id)
        if self._ended is None and current.progress >= 100 and _current_flow_run_id() is not None:
            self._ask_finished(task_id)
        if self._ended is None:
            return current
        return GcStatus(task_id=task_id, state=self._ended, progress=100, tags_deleted=current.tags_deleted,
                        objects_deleted=0, bytes_deleted=0, created=current.created, finished=self._finished,
                        tags_planned=current.tags_planned)

    def _ask_finished(self, task_id: str) -> None:
        from prefect.artifacts import create_markdown_artifact

        self._asked += 1
        create_markdown_artifact(
            markdown=self._finished_markdown(task_id),
            key=artifact_key("console-gc-finished", self.instance_id),
            description=f"Has garbage collection task {task_id} finished on ACR instance {self.instance_id}?",
        )
        _logger().warning(
            "ACR instance %s: every planned tag is gone; has GC task %s finished (sweep included)? The flow run is "
            "paused: check the console's Garbage Collection page, then resume the run with the answer.",
            self.instance_id, task_id)
        answer: GcFinishedInput = self._ask(GcFinishedInput, f"{FINISHED_PAUSE_KEY}-{self._asked}",
                                            f"has GC task {task_id} finished")
        if answer.finished:
            self._ended, self._finished = answer.state, _now()
            _logger().info("ACR instance %s: the operator confirms GC task %s ended %s%s", self.instance_id,
                           task_id, answer.state, f" ({answer.note})" if answer.note else "")

    def _progress(self, task_id: str) -> GcStatus:
        """Progress of the planned deletions as the public API shows them; never terminal.

        Only repositories with planned deletions still not seen gone are listed (ListRepoTag,
        all pages, ``api.concurrency`` at a time). A planned tag once seen gone counts as
        deleted for the rest of this driver's life (a tag pushed again under the same name
        later does not move progress backwards); a repository that no longer exists counts
        all its planned tags as gone.
        """
        with self._lock:
            pending = [repo_id for repo_id, (_, tags) in self._by_repo.items() if self._gone[repo_id] != tags]
        if pending:
            workers = max(1, min(self.config.api.concurrency, len(pending)))
            if workers == 1:
                found = [self._present(repo_id) for repo_id in pending]
            else:
                with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="acr-gc-console") as pool:
                    found = list(pool.map(self._present, pending))
            with self._lock:
                for repo_id, present in zip(pending, found):
                    _, tags = self._by_repo[repo_id]
                    self._gone[repo_id] |= tags - present
        planned = self.tags_planned
        with self._lock:
            gone = sum(len(g) for g in self._gone.values())
        progress = 100 if gone >= planned else int(gone * 100 // planned)
        started = self._started if self._started is not None and self._started.task_id == task_id else None
        return GcStatus(
            task_id=task_id,
            state="RUNNING",
            progress=progress,
            tags_deleted=gone,
            objects_deleted=0,  # unknown through the public API (the report samples the bucket)
            bytes_deleted=0,  # unknown through the public API
            created=started.created if started else None,
            finished=None,
            tags_planned=planned,
        )

    def cancel(self, task_id: str) -> GcStatus | None:
        """The public API cannot cancel a console task: ask the operator to, and report where it stands."""
        from prefect.artifacts import create_markdown_artifact

        current = self._progress(task_id) if self._ended is None else self.status(task_id)
        create_markdown_artifact(
            markdown=self._cancel_markdown(task_id, current),
            key=artifact_key("console-gc-cancel", self.instance_id),
            description=f"Cancel garbage collection in the console for ACR instance {self.instance_id}",
        )
        _logger().warning(
            "ACR instance %s: the public API cannot cancel console GC task %s — click Cancel on the instance's "
            "Garbage Collection page in the console (%d of %d planned tags already gone; they cannot be "
            "recovered).", self.instance_id, task_id, current.tags_deleted, current.tags_planned or 0)
        return current

    # -- listing

    def _present(self, repo_id: str) -> set[str]:
        """The planned tags of one repository that ListRepoTag still shows."""
        full, tags = self._by_repo[repo_id]
        try:
            listed = self._acr.list_repo_tags(repo_id, resource=full)
        except NotFound:  # the repository itself is gone: so are its tags
            return set()
        return {t.tag for t in listed} & tags

    # -- the operator's instructions

    def _where(self) -> str:
        return f"instance **`{self.instance_id}`** in region **`{self.region}`**"

    def _console_path(self) -> list[str]:
        return [
            f"Log on to the Container Registry console: <{CONSOLE_URL}>.",
            f"In the top navigation bar, select the region **`{self.region}`**.",
            "In the left-side navigation pane, click **Instances**.",
            f"On the **Instances** page, click the Enterprise Edition instance **`{self.instance_id}`**.",
            "In the left-side navigation pane of the instance, choose **Instances > Garbage Collection**.",
        ]

    @staticmethod
    def _numbered(steps: list[str]) -> str:
        return "\n".join(f"{i}. {s}" for i, s in enumerate(steps, 1))

    def _whitelist_markdown(self, variable: str) -> str:
        steps = self._console_path() + [
            "On the **Garbage Collection** page, click **Execute**.",
            "In the **Confirmation** dialog box, click **Submit Ticket** to have the account added to the "
            "garbage-collection whitelist. Do **not** start a task yet: this run will ask for that later, "
            "after its checks and the bucket freeze.",
        ]
        return f"""# One-time step: enable garbage collection for ACR {self.instance_id}

The public API cannot tell whether this Alibaba Cloud account is on the garbage-collection
whitelist, so this flow run is **paused** and asks you, once per instance, for {self._where()}.

If the **Confirmation** dialog below starts a task instead of offering a ticket, the account is
already whitelisted: **close the dialog without confirming** and answer `whitelisted = true`.

{self._numbered(steps)}

When the ticket has been accepted (the account is whitelisted), open this flow run in the
Prefect UI, click **Resume** and answer:

- `whitelisted`: **true** — recorded in the Prefect Variable `{variable}`, so later runs do not ask again;
- `whitelisted`: **false** — the ticket is not accepted yet: the run stops before changing anything.
  Run it again once the account is whitelisted.
- `note`: optional, e.g. the ticket number.

The run waits at most {self._pause_timeout_s()} s (`gc.timeout`), then stops without any change.
"""

    def _planned_table(self) -> str:
        if self.planned.empty:
            return "_No expired tag is planned: the task will only sweep unreferenced data._\n"
        counts = (self.planned.groupby(["namespace", "repo"]).size().sort_values(ascending=False)
                  .reset_index(name="tags"))
        rows = [f"| `{r.namespace}/{r.repo}` | {r.tags} |" for r in counts.head(MAX_REPOS_IN_ARTIFACT).itertuples()]
        more = len(counts) - MAX_REPOS_IN_ARTIFACT
        tail = f"\n\n… and {more} more repositories (the run's `deleted_tags.csv` lists every tag)." if more > 0 else ""
        return "| repository | expired tags |\n|---|---:|\n" + "\n".join(rows) + tail + "\n"

    def _start_markdown(self) -> str:
        steps = self._console_path() + [
            "On the **Garbage Collection** page, click **Execute**.",
            "In the **Confirmation** message, read the precautions, select **Confirm to clean up**, "
            "and then click **Confirm**.",
            "Optionally note the id of the new task shown on the Garbage Collection page.",
        ]
        return f"""# Start garbage collection for ACR {self.instance_id} now

All checks of this run have passed. Garbage collection is console-only, so this flow run is
**paused** until you start the task by hand for {self._where()}.

{self._numbered(steps)}

Then open this flow run in the Prefect UI, click **Resume** and answer:

- `started`: **true** once you clicked **Confirm** (**false** stops the run; nothing is deleted by it);
- `console_task_id`: optional, the task id the console shows;
- `note`: optional.

The run then watches the planned tags disappear through the public API (ListRepoTag) until all
{self.tags_planned} are gone or `gc.timeout` ({self._pause_timeout_s()} s) has passed. The
console task can be watched — and cancelled — on the same **Garbage Collection** page.

## Before you click Confirm

- **Deleted tags cannot be recovered.** The task deletes the *expired* tags of **all** image
  repositories of the instance, as the instance's lifecycle (retention) rules say today.
  This run planned {self.tags_planned} tag(s); every one of them was checked regenerable and is
  listed with how to regenerate it in the run's `deleted_tags.csv`. If the retention rules were
  changed since the plan, stop here (answer `started = false`) and run again.
- **Do not touch the OSS bucket** `{self.config.target.bucket}` that stores the instance's data —
  no uploads, deletions or lifecycle changes — before, during or after the task.
- **Storage does not drop at once:** the bucket's size goes down only after the number of days its
  lifecycle rules set; this run's report keeps sampling the bucket until then.
- Chart repositories are not cleaned by garbage collection; image pulls keep working during the task.

## Planned deletions

{self._planned_table()}"""

    def _finished_markdown(self, task_id: str) -> str:
        steps = self._console_path() + [
            "On the **Garbage Collection** page, look at the task's state: it has finished only when the "
            "console says so (Succeeded, Failed or Canceled), not when the tags are gone — the sweep of "
            "unreferenced data comes after them.",
        ]
        return f"""# Has garbage collection task `{task_id}` finished on ACR {self.instance_id}?

Every one of the {self.tags_planned} planned tag(s) is gone from {self._where()}, but the
public API cannot see the task itself. The bucket `{self.config.target.bucket}` stays frozen
until you confirm the task has ended: writing to it during the sweep is what the vendor forbids.

{self._numbered(steps)}

Then open this flow run in the Prefect UI, click **Resume** and answer:

- `finished`: **true** once the console shows the task ended, with `state` as it shows it
  (SUCCESS, FAILED or CANCELED); **false** if it is still running (you will be asked again);
- `note`: optional.

If nobody answers within `gc.timeout` ({self._pause_timeout_s()} s), the run ends and the bucket
stays frozen; `acr-gc thaw --config … --force` lifts the freeze once you have seen the task end.
"""

    def _cancel_markdown(self, task_id: str, current: GcStatus) -> str:
        steps = self._console_path() + [
            "On the **Garbage Collection** page, find the running task and click **Cancel**.",
        ]
        return f"""# Cancel garbage collection for ACR {self.instance_id}

The run asked to cancel GC task `{task_id}` ({self._where()}), but the public API cannot cancel a
task started in the console. Please cancel it by hand:

{self._numbered(steps)}

So far {current.tags_deleted} of {current.tags_planned} planned tag(s) are gone ({current.progress} %).
Tags already deleted stay deleted: they cannot be recovered and must be regenerated from
the run's `deleted_tags.csv` if needed.
"""
