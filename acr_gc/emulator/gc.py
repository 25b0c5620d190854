"""The emulator's model of the console GC task (the real OpenAPI has none; DESIGN 1 and 6).

A task deletes the expired tags of every image repository of the instance
(``retention.expired_tags``; repositories in (namespace, name) order, each one's oldest
tag first), one tag at a time at ``tags_per_second`` real seconds (the fault setting
``gc_tags_per_second`` changes that pace at runtime; 0 pauses the task), then
sweeps manifests and blobs no surviving tag still references. It runs as a background
asyncio task in the server's event loop, so it interleaves with API requests exactly as
a real long GC does (tags disappear from ListRepoTag while it runs).

One active (PENDING or RUNNING) task per instance. Cancel stops it between two tag
deletions: deleted tags stay deleted and there is no sweep. The fault setting
``gc_fail_after_tags`` turns a task FAILED once it has deleted that many tags.

A running task keeps the tags it has still to delete on the task itself (``pending``),
so a dump taken mid-run carries them and the restored emulator goes on from there
(``resume_active``) to the same end as an uninterrupted task.
GC deletes as the registry's RAM role (``storage.Bucket.registry_principal``), which the
bucket policy binds like anyone else (only the owner's root is exempt, as on OSS): a Deny
for ``"*"`` or for that role makes the task FAILED, its error naming the denied action.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import deque
from dataclasses import dataclass, field, fields

from acr_gc.emulator.registry import NotFound, PolicyDenied, epoch_ms
from acr_gc.emulator.retention import Readings, expired_by_one_rule, expired_tags

SCHEDULE_DAYS = {"DAY": 1, "WEEK": 7, "MONTH": 30}  # an Auto rule's period after each run

ACTIVE = ("PENDING", "RUNNING")
FINAL = ("SUCCESS", "FAILED", "CANCELED")


class GcRefused(Exception):
    """A GC action the service refuses; carries the HTTP status and error Code."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass
class GcTask:
    task_id: str
    instance_id: str
    create_ms: int
    state: str = "PENDING"
    progress: int = 0
    tags_planned: int = 0
    tags_deleted: int = 0
    objects_deleted: int = 0
    bytes_deleted: int = 0
    finish_ms: int | None = None
    error: str | None = None
    client_token: str | None = None  # the caller's idempotency key: a repeated create answers this task
    deleted_tags: list[str] = field(default_factory=list, repr=False)
    # (repo, tag record) still to delete, oldest first; filled when the task starts RUNNING
    pending: deque = field(default_factory=deque, repr=False)

    def to_api(self) -> dict:
        body = {
            "TaskId": self.task_id,
            "InstanceId": self.instance_id,
            "State": self.state,
            "Progress": self.progress,
            "TagsPlanned": self.tags_planned,
            "TagsDeleted": self.tags_deleted,
            "ObjectsDeleted": self.objects_deleted,
            "BytesDeleted": self.bytes_deleted,
            "CreateTime": self.create_ms,
            "FinishTime": self.finish_ms,
        }
        if self.error:
            body["ErrorMessage"] = self.error
        if self.client_token:
            body["ClientToken"] = self.client_token
        return body

    def to_dump(self) -> dict:
        doc = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "pending"}
        doc["deleted_tags"] = list(self.deleted_tags)
        doc["pending"] = [[repo.full_name, record.tag] for repo, record in self.pending]
        return doc

    @classmethod
    def from_dump(cls, doc: dict, inst) -> "GcTask":
        """``inst`` is the restored instance record the pending tags are looked up in."""
        if doc["state"] not in ACTIVE + FINAL:
            raise ValueError(f"GC task {doc['task_id']}: state {doc['state']!r}")
        task = cls(**{k: v for k, v in doc.items() if k != "pending"})  # dumps before ClientToken lack it
        repos = {repo.full_name: repo for repo in inst.repos}
        for full_name, tag in doc["pending"]:
            repo = repos[full_name]
            record = repo.tags.get(tag)
            if record is not None:  # a tag gone already is one the task would have skipped
                task.pending.append((repo, record))
        return task


class GcService:
    """Starts, tracks and cancels GC tasks; task records live on the registry's instances."""

    def __init__(self, state, faults, tags_per_second: float = 200.0, readings: Readings | None = None):
        self.state = state
        self.faults = faults
        self.tags_per_second = max(float(tags_per_second), 0.001)
        self.readings = readings or Readings()  # which reading of the rules GC plays
        self.start_readings = self.readings  # what reset and load go back to
        self._runners: set[asyncio.Task] = set()

    def run_due_rules(self) -> list[str]:
        """Run every ``Auto`` rule whose ``NextTime`` has come, as the service does by itself:
        it deletes the tags that rule expires (``retention.expired_by_one_rule``, under the
        played reading), then its NextTime moves one ScheduleTime period on. Returns the
        deleted ``ns/repo:tag`` names."""
        now = self.state.now()
        now_ms = epoch_ms(now)
        deleted: list[str] = []
        for inst in self.state.registry.instances.values():
            for rule in inst.lifecycle_rules:
                if not rule.auto or rule.next_time_ms is None or rule.next_time_ms > now_ms:
                    continue
                for repo in list(inst.repos):
                    for record in reversed(expired_by_one_rule(repo, rule, inst.lifecycle_rules, self.readings, now)):
                        self.state.registry.delete_tag(inst, repo, record.tag, now)
                        deleted.append(f"{repo.full_name}:{record.tag}")
                period = SCHEDULE_DAYS.get(str(rule.schedule_time).upper(), 30) * 86_400_000
                while rule.next_time_ms <= now_ms:
                    rule.next_time_ms += period
        return deleted

    # ---- the actions ----------------------------------------------------------------

    def is_enabled(self, instance_id: str) -> bool:
        return self.state.registry.instance(instance_id).gc_whitelisted

    def active(self, instance_id: str) -> GcTask | None:
        inst = self.state.registry.instance(instance_id)
        return next((t for t in inst.gc_tasks if t.state in ACTIVE), None)

    def create(self, instance_id: str, client_token: str | None = None) -> GcTask:
        """A new task; with ``client_token``, the task an earlier create with that token
        started, whatever its state (the idempotency Alibaba Cloud's APIs give ClientToken)."""
        inst = self.state.registry.instance(instance_id)
        if client_token:
            earlier = next((t for t in inst.gc_tasks if t.client_token == client_token), None)
            if earlier is not None:
                return earlier
        if not inst.gc_whitelisted:
            raise GcRefused(
                403,
                "GC_NOT_ENABLED",
                f"Garbage collection is not enabled for instance {instance_id}: "
                "submit a ticket to add the account to the GC whitelist.",
            )
        running = self.active(instance_id)
        if running is not None:
            raise GcRefused(
                400,
                "GC_TASK_ALREADY_RUNNING",
                f"A garbage collection task is already active on instance {instance_id}: TaskId {running.task_id}.",
            )
        n = len(inst.gc_tasks) + 1
        task = GcTask(
            task_id="gct-" + hashlib.sha256(f"{instance_id}\x00{n}".encode()).hexdigest()[:16],
            instance_id=instance_id,
            create_ms=epoch_ms(self.state.now()),
            client_token=client_token or None,
        )
        inst.gc_tasks.append(task)
        self._launch(inst, task)
        return task

    def _launch(self, inst, task: GcTask) -> None:
        runner = asyncio.get_running_loop().create_task(self._run(inst, task))
        self._runners.add(runner)
        runner.add_done_callback(self._runners.discard)

    def get(self, instance_id: str, task_id: str) -> GcTask:
        inst = self.state.registry.instance(instance_id)
        for task in inst.gc_tasks:
            if task.task_id == task_id:
                return task
        raise NotFound("GC_TASK_NOT_EXIST", f"The garbage collection task {task_id} does not exist.")

    def list(self, instance_id: str) -> list[GcTask]:
        """Newest first."""
        return list(reversed(self.state.registry.instance(instance_id).gc_tasks))

    def cancel(self, instance_id: str, task_id: str) -> GcTask:
        task = self.get(instance_id, task_id)
        if task.state not in ACTIVE:
            raise GcRefused(
                400, "GC_TASK_NOT_RUNNING", f"The garbage collection task {task_id} is already {task.state}."
            )
        self._finish(task, "CANCELED")
        return task

    def abort_all(self) -> None:
        """Stop every runner (used before reset/load/restore replaces the registry)."""
        for runner in list(self._runners):
            runner.cancel()
        self._runners.clear()

    def resume_active(self) -> None:
        """Run the PENDING and RUNNING tasks of a restored registry on to their end."""
        for inst in self.state.registry.instances.values():
            for task in inst.gc_tasks:
                if task.state in ACTIVE:
                    self._launch(inst, task)

    # ---- dump and restore -----------------------------------------------------------

    def dump_tasks(self) -> dict[str, list[dict]]:
        return {
            inst.instance_id: [task.to_dump() for task in inst.gc_tasks]
            for inst in self.state.registry.instances.values()
        }

    # ---- the runner -----------------------------------------------------------------

    def _finish(self, task: GcTask, state: str, error: str | None = None) -> None:
        task.state = state
        task.error = error
        task.pending.clear()  # a finished task deletes nothing more
        task.finish_ms = epoch_ms(self.state.now())
        if state == "SUCCESS":
            task.progress = 100

    def _pace(self) -> float:
        """Tags per second now: the fault setting ``gc_tags_per_second`` when set (0: paused),
        else the service's own."""
        override = self.faults.gc_tags_per_second
        return self.tags_per_second if override is None else override

    def _should_fail(self, task: GcTask) -> bool:
        limit = self.faults.gc_fail_after_tags
        return limit is not None and task.tags_deleted >= limit

    async def _run(self, inst, task: GcTask) -> None:
        """Start a PENDING task, or go on with a RUNNING one (restored from a dump)."""
        registry = self.state.registry
        try:
            await asyncio.sleep(0)
            if task.state == "PENDING":
                task.state = "RUNNING"
                task.pending = deque(
                    (repo, record)
                    for repo in list(inst.repos)
                    for record in reversed(expired_tags(repo, inst.lifecycle_rules, self.readings, self.state.now()))
                )
                task.tags_planned = len(task.pending)
            if task.state != "RUNNING":
                return
            loop = asyncio.get_running_loop()
            rate = None  # the pace counted from ``started``; a new pace starts counting again
            while task.pending:
                if self._pace() != rate:
                    rate, started, done = self._pace(), loop.time(), 0  # done: by this runner, at this pace
                if rate == 0:  # paused (fault setting): still RUNNING, nothing deleted until resumed
                    await asyncio.sleep(0.01)
                    if task.state != "RUNNING":
                        return
                    continue
                due = max(done + 1, int((loop.time() - started) * rate))
                while done < due and task.pending:
                    if task.state != "RUNNING":
                        return
                    if self._should_fail(task):
                        self._finish(task, "FAILED", f"injected fault after {task.tags_deleted} tag deletions")
                        return
                    repo, record = task.pending.popleft()
                    done += 1
                    if repo.tags.get(record.tag) is not record:
                        continue  # deleted (or re-pushed) by someone else meanwhile
                    objects, freed = registry.delete_tag(inst, repo, record.tag, self.state.now())
                    task.tags_deleted += 1
                    task.objects_deleted += objects
                    task.bytes_deleted += freed
                    task.deleted_tags.append(f"{repo.full_name}:{record.tag}")
                    task.progress = min(99, task.tags_deleted * 100 // task.tags_planned)
                if task.pending:
                    await asyncio.sleep(max(1.0 / rate, 0.005))
                    if task.state != "RUNNING":
                        return
            if self._should_fail(task):
                self._finish(task, "FAILED", f"injected fault after {task.tags_deleted} tag deletions")
                return
            keys, freed = registry.sweep(inst.bucket_name, self.state.now())
            task.objects_deleted += len(keys)
            task.bytes_deleted += freed
            self._finish(task, "SUCCESS")
        except PolicyDenied as exc:
            self._finish(task, "FAILED", str(exc))
        except asyncio.CancelledError:
            if task.state in ACTIVE:
                self._finish(task, "FAILED", "the emulator was reset while the task ran")
            raise
        except Exception as exc:  # a bug must show as a failed task, not a silent hang
            self._finish(task, "FAILED", f"{type(exc).__name__}: {exc}")


def restore_tasks(registry, doc: dict[str, list[dict]]) -> None:
    """Attach dumped tasks to the instances of a restored registry (not yet live: nothing runs)."""
    for instance_id, tasks in doc.items():
        inst = registry.instance(instance_id)
        inst.gc_tasks = [GcTask.from_dump(task, inst) for task in tasks]
        if sum(task.state in ACTIVE for task in inst.gc_tasks) > 1:
            raise ValueError(f"instance {instance_id}: more than one active GC task")
