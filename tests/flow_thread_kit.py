"""A flow run on a background thread, so a test can act while it runs (answer a pause,
change the cloud at a held call): the thread carries the test's context, Prefect's
settings included. Shared by the console-driver, operator and re-check tests."""

from __future__ import annotations

import contextvars
import threading
import time
from typing import Any, Callable


class InThread:
    """``target()`` on its own thread with the caller's context; ``join`` returns its result."""

    def __init__(self, target: Callable[[], Any]):
        self.result: Any = None
        self.error: BaseException | None = None
        context = contextvars.copy_context()
        self.thread = threading.Thread(target=context.run, args=(self._run, target), daemon=True)
        self.thread.start()

    def _run(self, target: Callable[[], Any]) -> None:
        try:
            self.result = target()
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc

    def join(self, timeout: float = 180.0):
        self.thread.join(timeout)
        assert not self.thread.is_alive(), f"still running after {timeout} s"
        assert self.error is None, repr(self.error)
        return self.result


class FlowInThread(InThread):
    """``flow(**parameters)`` under the flow run name ``name``; it can be found, waited for
    at a pause, read and resumed through the Prefect API."""

    def __init__(self, flow, name: str, **parameters):
        self.name = name
        super().__init__(lambda: flow.with_options(flow_run_name=name)(**parameters, return_state=True))

    @property
    def state(self):
        return self.result

    def flow_run(self):
        from prefect import get_client
        from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName

        with get_client(sync_client=True) as client:
            runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[self.name])))
        return runs[0] if runs else None

    def wait_paused(self, pause_key: str, timeout: float = 120.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = self.flow_run()
            if run is not None and run.state is not None and run.state.is_paused():
                assert run.state.state_details.pause_key == pause_key, run.state.state_details
                return run
            if not self.thread.is_alive():
                raise AssertionError(f"flow ended before pausing for {pause_key}: {self.state} {self.error!r}")
            time.sleep(0.05)
        raise AssertionError(f"flow run {self.name} did not pause for {pause_key} within {timeout} s")

    def description(self, run) -> str:
        """The paused run's input description, as the UI shows it above the form."""
        from prefect.input.actions import read_flow_run_input
        from prefect.input.run_input import keyset_from_paused_state

        return read_flow_run_input(keyset_from_paused_state(run.state)["description"], flow_run_id=run.id)

    def resume(self, run_input: dict) -> None:
        from prefect.flow_runs import resume_flow_run

        resume_flow_run(self.flow_run().id, run_input=run_input)
