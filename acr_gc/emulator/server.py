"""One emulator process: one asyncio loop, three uvicorn servers (ACR, OSS, registry ports).

All ports share one ``EmulatorState`` and one ``FaultSettings``; everything runs in the
loop thread, so the state needs no locks. Once both sockets listen, exactly one JSON
line goes to stdout::

    {"acr_endpoint": "H:P", "oss_endpoint": "H:Q", "registry_endpoint": "H:R", "admin": "http://H:P/_emulator"}

Port 0 picks a free port (the line tells which).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import sys
from dataclasses import dataclass
from typing import Callable

import uvicorn
from uvicorn.config import LOGGING_CONFIG
from starlette.applications import Starlette
from starlette.routing import Mount

from acr_gc.emulator import acr_wire, admin, oci_wire, oss_wire
from acr_gc.netloc import is_loopback
from acr_gc.emulator import dataset as ds
from acr_gc.emulator.faults import FaultMiddleware, FaultSettings, ServiceErrors
from acr_gc.emulator.gc import GcService
from acr_gc.emulator.retention import Readings
from acr_gc.emulator.state import EmulatorState


@dataclass
class ServerOptions:
    host: str = "127.0.0.1"
    acr_port: int = 9101
    oss_port: int = 9102
    registry_port: int = 9103
    day_seconds: float = 86400.0
    latency_ms: float = 0.0
    qps: float = 0.0
    fault_rate: float = 0.0
    seed: int = 0
    gc_tags_per_second: float = 200.0
    stat_delay_hours: float = 0.0  # GetBucketStat's figures lag this many emulated hours
    log_level: str = "warning"
    combination: str = "any-retains"  # the readings of the lifecycle rules it plays (retention.Readings)
    count_regexp: str = "count-or-match"
    regexp_match: str = "full"


ACR_THROTTLE = (400, "Throttling.User", "Request was denied due to user flow control.")
OSS_THROTTLE = (503, "TotalQpsLimitExceeded", "Max total qps limit is exceeded")


@dataclass
class Emulator:
    state: EmulatorState
    faults: FaultSettings
    gc: GcService
    acr_app: object
    oss_app: object
    registry_app: object = None


def build(dataset: ds.Dataset, options: ServerOptions) -> Emulator:
    """The two ASGI apps over one shared state (no sockets; usable in-process too)."""
    faults = FaultSettings(
        latency_ms=options.latency_ms, qps=options.qps, fault_rate=options.fault_rate, seed=options.seed,
        stat_delay_hours=options.stat_delay_hours,
    )
    state = EmulatorState(dataset, day_seconds=options.day_seconds, faults=faults)
    readings = Readings(options.combination, options.count_regexp, options.regexp_match)
    gc = GcService(state, faults, options.gc_tags_per_second, readings)
    state.gc = gc
    acr = Starlette(
        routes=[
            Mount("/_emulator", app=admin.create_app(state, gc, faults)),
            Mount("/", app=acr_wire.create_app(state, gc)),
        ]
    )
    acr_app = FaultMiddleware(
        acr, faults, ServiceErrors(acr_wire.error_response, ACR_THROTTLE), "acr", acr_wire.action_of
    )
    oss_app = FaultMiddleware(
        oss_wire.create_app(state), faults, ServiceErrors(oss_wire.error_response, OSS_THROTTLE), "oss",
        oss_wire.operation_of,
    )
    registry_app = FaultMiddleware(
        oci_wire.create_app(state), faults, ServiceErrors(oci_wire.error_response, oci_wire.REGISTRY_THROTTLE),
        "registry", oci_wire.operation_of,
    )
    return Emulator(state, faults, gc, acr_app, oss_app, registry_app)


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signal handling to ``serve`` (two servers, one loop)."""

    @contextlib.contextmanager
    def capture_signals(self):
        yield


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto IPPROTO_TCP matters: asyncio only sets TCP_NODELAY on accepted sockets whose
    # proto says TCP, and without it every keep-alive request waits ~40 ms (Nagle + delayed ACK)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


def _endpoint(host: str, sock: socket.socket) -> str:
    port = sock.getsockname()[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def ready_line(host: str, acr_sock: socket.socket, oss_sock: socket.socket, registry_sock: socket.socket) -> dict:
    """The endpoints as the ready line gives them (``EmulatorHandle`` reads them back)."""
    acr = _endpoint(host, acr_sock)
    return {"acr_endpoint": acr, "oss_endpoint": _endpoint(host, oss_sock),
            "registry_endpoint": _endpoint(host, registry_sock), "admin": f"http://{acr}/_emulator"}


def print_ready_line(line: dict, servers: list[uvicorn.Server]) -> None:
    """The process's way to say it is ready: one JSON line on stdout (``EmulatorProcess`` waits for it)."""
    sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()


async def serve_async(
    dataset: ds.Dataset,
    options: ServerOptions,
    restore: dict | None = None,
    *,
    on_ready: Callable[[dict, list[uvicorn.Server]], None] = print_ready_line,
    log_config: dict | None = LOGGING_CONFIG,
    handle_signals: bool = True,
) -> None:
    """Serve ``dataset``, or with ``restore`` the state of a dump (``InvalidDump`` before any
    socket is bound when it cannot be restored).

    Once every port listens, ``on_ready(ready_line, servers)`` is called in the loop; setting
    ``should_exit`` on the servers ends the serving. The defaults are those of the
    ``acr-gc emulator serve`` process: the ready line on stdout, uvicorn's own logging set
    up, SIGINT/SIGTERM stop it. ``ThreadedEmulator`` runs this same coroutine on a thread
    of a test process, where the logging setup and the signals belong to the test process
    (``log_config=None``, ``handle_signals=False``)."""
    emulator = build(dataset, options)
    if restore is not None:
        emulator.state.restore(restore)
    acr_sock = _bind(options.host, options.acr_port)
    oss_sock = _bind(options.host, options.oss_port)
    if not is_loopback(f"[{options.host}]" if ":" in options.host else options.host):
        sys.stderr.write(f"acr-gc emulator: warning: listening on {options.host}, not a loopback address: other "
                         "machines can reach it, and it serves test credentials' data; the admin API still answers "
                         "only requests addressed to a loopback host\n")
        sys.stderr.flush()
    registry_sock = _bind(options.host, options.registry_port)
    sockets = [acr_sock, oss_sock, registry_sock]
    servers = []
    for app in (emulator.acr_app, emulator.oss_app, emulator.registry_app):
        config = uvicorn.Config(
            app,
            log_level=options.log_level,
            log_config=log_config,
            access_log=False,
            lifespan="off",
            timeout_keep_alive=30,
            backlog=1024,
            server_header=False,  # the OSS app answers with its own Server header
            date_header=False,  # and with Date on the emulated clock
        )
        servers.append(_Server(config))
    loop = asyncio.get_running_loop()

    def stop() -> None:
        for server in servers:
            server.should_exit = True

    if handle_signals:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop)

    tasks = [asyncio.create_task(server.serve(sockets=[sock])) for server, sock in zip(servers, sockets)]
    try:
        while not all(s.started for s in servers):
            if any(t.done() for t in tasks):
                stop()
                break
            await asyncio.sleep(0.01)
        else:
            on_ready(ready_line(options.host, acr_sock, oss_sock, registry_sock), servers)
        await asyncio.gather(*tasks)
    finally:
        emulator.gc.abort_all()
        for sock in sockets:  # uvicorn closes its listeners; a server that never started leaves its socket open
            sock.close()


def serve(dataset: ds.Dataset, options: ServerOptions, restore: dict | None = None) -> None:
    """Run until SIGINT/SIGTERM."""
    asyncio.run(serve_async(dataset, options, restore))
