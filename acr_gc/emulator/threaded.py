"""``ThreadedEmulator``: the emulator's servers on a daemon thread of the calling process.

    with ThreadedEmulator(dataset_dict, gc_tags_per_second=50) as emu:
        emu.acr_endpoint; emu.load({...}); emu.set_faults(fault_rate=0.2); emu.truth()

The same coroutine as ``acr-gc emulator serve`` (``server.serve_async``: the same apps,
fault/latency/qps middleware and emulated clock), run by its own asyncio loop on its own
thread, so a test gets an emulator without starting a Python interpreter. Clients reach
it exactly as they reach ``EmulatorProcess``: over HTTP on its ports, through the real
SDKs; a child process (``acr-gc run``) can use it too, it is just a port.

It shares nothing with the code under test but the interpreter: the emulator imports no
``acr_gc.cloud`` module (the secret registry stays the test's), and it leaves logging as
the test process set it (uvicorn's loggers propagate to the root logger instead of
getting uvicorn's handlers) and signals to the main thread. What it cannot do is die
apart from the test: a test that kills, SIGSTOPs or restarts the emulator uses
``EmulatorProcess``.
"""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Any

import uvicorn

from acr_gc.emulator import dataset as ds
from acr_gc.emulator.handle import EmulatorError, EmulatorHandle
from acr_gc.emulator.server import ServerOptions, serve_async


class ThreadedEmulator(EmulatorHandle):
    """Takes ``EmulatorProcess``'s arguments (``None``: the ``acr-gc emulator serve`` default);
    ``restore`` may also be the dump itself."""

    def __init__(
        self,
        dataset: str | Path | dict | None = None,
        *,
        restore: str | Path | dict | None = None,
        startup_timeout: float = 30.0,
        stop_timeout: float = 10.0,
        **options: Any,
    ):
        """``options``: ``ServerOptions`` fields (host, ports, day_seconds, qps, fault_rate,
        seed, gc_tags_per_second, ...), as ``EmulatorProcess`` takes them; ports default to 0
        (a free one), and a ``None`` means the ``acr-gc emulator serve`` default."""
        if (dataset is None) == (restore is None):
            raise ValueError("give exactly one of dataset and restore (a dump file)")
        if restore is not None:  # as the CLI: the dump carries the clock and the fault settings
            self._restore = restore if isinstance(restore, dict) else json.loads(Path(restore).read_text("utf-8"))
            self._dataset = ds.Dataset.model_validate(self._restore["start_dataset"])
        else:
            self._restore = None
            self._dataset = (ds.Dataset.model_validate(dataset) if isinstance(dataset, dict)
                             else ds.load_dataset(dataset))
        given = {name: value for name, value in options.items() if value is not None}
        self.options = ServerOptions(**{"acr_port": 0, "oss_port": 0, "registry_port": 0, **given})
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._servers: list[uvicorn.Server] = []
        self._error: BaseException | None = None

    # ---- lifecycle ------------------------------------------------------------------

    def start(self) -> "ThreadedEmulator":
        if self._thread is not None:
            raise EmulatorError("a ThreadedEmulator starts once; make a new one to serve again")
        ready: dict = {}

        def on_ready(line: dict, servers: list[uvicorn.Server]) -> None:
            ready.update(line)
            self._servers = servers
            self._ready.set()

        def run() -> None:
            try:
                asyncio.run(serve_async(self._dataset, self.options, self._restore, on_ready=on_ready,
                                        log_config=None, handle_signals=False))
            except BaseException as exc:  # noqa: BLE001 - reported by start() or stop()
                self._error = exc
            finally:
                self._ready.set()  # start() must not wait out its timeout for a server that ended

        self._thread = threading.Thread(target=run, name="acr-gc-emulator", daemon=True)
        self._thread.start()
        if not self._ready.wait(self.startup_timeout) or not ready:
            self.stop()
            raise EmulatorError(f"emulator did not start: {self._error!r}")
        self._connected(ready)
        return self

    def stop(self) -> None:
        """Stop serving and close the ports (a new emulator may bind them at once). Requests
        still open after ``stop_timeout`` seconds (a held call) are cut."""
        self._disconnect()
        if self._thread is None:
            return
        for server in self._servers:
            server.should_exit = True
        self._thread.join(self.stop_timeout)
        if self._thread.is_alive():
            for server in self._servers:
                server.force_exit = True
            self._thread.join(self.stop_timeout)
        if self._thread.is_alive():
            raise EmulatorError(f"emulator thread did not stop within {2 * self.stop_timeout} s")

    def log_tail(self, chars: int = 4000) -> str:
        """No log of its own: uvicorn's messages go to this process's logging."""
        return f"(in-process emulator; its messages are in the test's log){'' if self._error is None else ' ' + repr(self._error)}"

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()
