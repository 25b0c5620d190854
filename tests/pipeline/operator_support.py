"""Helpers of the operator's-seat tests (issue 15): a flow run in a thread that the test
answers through the Prefect API, a local webhook receiver that records what it is sent,
and a Prefect ``CustomWebhookNotificationBlock`` saved on the session's server.

Imported by name (tests/pipeline/conftest.py puts this folder on ``sys.path``).
"""

from __future__ import annotations

import contextvars
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from pipeline_support import OPS_AK, OPS_SECRET


class FlowInThread:
    """``reclaim_storage`` (or another flow) in a background thread, under a unique run name."""

    def __init__(self, flow, name: str, **parameters):
        self.name = f"{name}-{time.time_ns()}"
        self.state = None
        self.error: BaseException | None = None
        context = contextvars.copy_context()
        self.thread = threading.Thread(target=context.run, args=(self._run, flow, parameters), daemon=True)
        self.thread.start()

    def _run(self, flow, parameters):
        try:
            self.state = flow.with_options(flow_run_name=self.name)(**parameters, return_state=True)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc

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
            time.sleep(0.1)
        raise AssertionError(f"flow run {self.name} did not pause for {pause_key} within {timeout} s")

    def description(self, run) -> str:
        """The paused run's input description, as the UI shows it above the form."""
        from prefect.input.actions import read_flow_run_input
        from prefect.input.run_input import keyset_from_paused_state

        return read_flow_run_input(keyset_from_paused_state(run.state)["description"], flow_run_id=run.id)

    def resume(self, run_input: dict) -> None:
        from prefect.flow_runs import resume_flow_run

        resume_flow_run(self.flow_run().id, run_input=run_input)

    def join(self, timeout: float = 180.0):
        self.thread.join(timeout)
        assert not self.thread.is_alive(), f"flow run {self.name} still running after {timeout} s"
        assert self.error is None, repr(self.error)
        return self.state


def start_reclaim(config: dict, monkeypatch, name: str) -> tuple[FlowInThread, Path]:
    from acr_gc.config import Config
    from acr_gc.flows.reclaim import reclaim_storage
    from acr_gc.reports.files import new_run_id

    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", OPS_AK)
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", OPS_SECRET)
    run_id = new_run_id()
    run = FlowInThread(reclaim_storage, name, config=Config.model_validate(config), run_id=run_id)
    return run, Path(config["report"]["out_dir"]) / config["target"]["instance_id"] / run_id


class Receiver:
    """A local HTTP endpoint that records every JSON body posted to it (``status`` answers)."""

    def __init__(self, status: int = 200):
        self.status = status
        self.messages: list[dict] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.messages.append(json.loads(body))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def subjects(self) -> list[str]:
        return [m["subject"] for m in self.messages]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def save_webhook_block(name: str, url: str) -> str:
    """A generic webhook notification block on the session's Prefect server; returns its name."""
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    CustomWebhookNotificationBlock(name=name, url=url,
                                   json_data={"subject": "{{subject}}", "body": "{{body}}"}).save(name, overwrite=True)
    return name
