"""The ``emulator`` driver: the emulator's model of the console GC task.

Its actions (GetGarbageCollectionEnablement, CreateGarbageCollectionTask, …) are the
emulator's own, documented in docs/emulator.md, and go through the same ACR SDK client,
signing, rate limit and retries as the public actions.
"""

from __future__ import annotations

from acr_gc.cloud.acr import AcrClient
from acr_gc.cloud.errors import CloudError
from acr_gc.gc.driver import GcStatus


CREATE_ATTEMPTS = 3  # CreateGarbageCollectionTask after an ambiguous failure that started nothing


class EmulatorGcDriver:
    name = "emulator"

    def __init__(self, acr: AcrClient):
        self._acr = acr

    def is_enabled(self) -> bool:
        return self._acr.gc_enablement()

    def active_task(self) -> GcStatus | None:
        return next((task for task in self._acr.gc_list() if task.active), None)

    def started_task(self, client_token: str | None) -> GcStatus | None:
        tasks = self._acr.gc_list()
        mine = next((task for task in tasks if client_token and task.client_token == client_token), None)
        return mine or next((task for task in tasks if task.active), None)

    def start(self, client_token: str | None = None) -> GcStatus:
        active = self.active_task()
        if active is not None:
            return active
        for attempt in range(1, CREATE_ATTEMPTS + 1):
            try:
                task_id = self._acr.gc_create(client_token)
            except CloudError as exc:
                # Refused because one is running (a race with another run), or the outcome is
                # unknown (the connection dropped after sending): either way, look before failing.
                active = self.active_task()
                if active is not None:
                    return active
                # None is active, so the ambiguous create started nothing: asking again
                # cannot start a second task.
                if not exc.retryable or attempt == CREATE_ATTEMPTS:
                    raise
                continue
            return self._acr.gc_get(task_id)
        raise AssertionError("unreachable")

    def status(self, task_id: str) -> GcStatus:
        return self._acr.gc_get(task_id)

    def cancel(self, task_id: str) -> GcStatus | None:
        try:
            return self._acr.gc_cancel(task_id)
        except CloudError as exc:
            if exc.code == "GC_TASK_NOT_RUNNING":  # finished meanwhile: nothing to cancel
                return self._acr.gc_get(task_id)
            raise
