"""Helpers of the operator's-seat tests (issue 15): a flow run in a thread that the test
answers through the Prefect API, a local webhook receiver that records what it is sent,
and a Prefect ``CustomWebhookNotificationBlock`` saved on the session's server.

Imported by name (tests/pipeline/conftest.py puts this folder on ``sys.path``).
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path

from flow_thread_kit import FlowInThread
from http_kit import LoopbackHttpServer
from pipeline_support import OPS_AK, OPS_SECRET


def start_reclaim(config: dict, monkeypatch, name: str) -> tuple[FlowInThread, Path]:
    from acr_gc.config import Config
    from acr_gc.flows.reclaim import reclaim_storage
    from acr_gc.reports.files import new_run_id

    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", OPS_AK)
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", OPS_SECRET)
    run_id = new_run_id()
    run = FlowInThread(reclaim_storage, f"{name}-{time.time_ns()}", config=Config.model_validate(config),
                       run_id=run_id)
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

        self.server = LoopbackHttpServer(Handler)
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
