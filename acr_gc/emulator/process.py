"""``EmulatorProcess``: run ``acr-gc emulator serve`` as a subprocess for tests, benchmarks, demo.

    with EmulatorProcess("dataset.json", gc_tags_per_second=50) as emu:
        emu.acr_endpoint            # "127.0.0.1:PORT" for the ACR SDK Config.endpoint
        emu.oss_endpoint            # "127.0.0.1:PORT" for the OSS SDK (endpoint_type='ip')
        emu.load({...}); emu.advance_clock(3); emu.set_faults(fault_rate=0.2); emu.truth()

The process gets free ports (``--acr-port 0 --oss-port 0``) unless told which, its ready
line is read from stdout, its stderr goes to a log file (``emu.log_path``) so a chatty
server never blocks on a full pipe, and it is terminated (then killed) on exit.

A restart with the state kept, on the same ports (what a client sees as a few seconds of
downtime)::

    path.write_text(json.dumps(emu.dump())); emu.stop()
    EmulatorProcess(restore=path, acr_port=emu.acr_port, oss_port=emu.oss_port).start()
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from acr_gc.emulator.handle import EmulatorError, EmulatorHandle

__all__ = ["EmulatorError", "EmulatorProcess"]


class EmulatorProcess(EmulatorHandle):
    """The emulator in a child process (``acr-gc emulator serve``): for what must kill,
    SIGSTOP or restart it, and for the demo; tests that need none of that use
    ``ThreadedEmulator``, the same servers on a thread."""

    def __init__(
        self,
        dataset: str | Path | dict | None = None,
        *,
        restore: str | Path | None = None,
        host: str = "127.0.0.1",
        acr_port: int = 0,
        oss_port: int = 0,
        registry_port: int = 0,
        day_seconds: float | None = None,
        latency_ms: float | None = None,
        qps: float | None = None,
        fault_rate: float | None = None,
        seed: int | None = None,
        gc_tags_per_second: float | None = None,
        combination: str | None = None,
        count_regexp: str | None = None,
        regexp_match: str | None = None,
        stat_delay_hours: float | None = None,
        startup_timeout: float = 30.0,
        python: str = sys.executable,
    ):
        if (dataset is None) == (restore is None):
            raise ValueError("give exactly one of dataset and restore (a dump file)")
        self._tmp = tempfile.TemporaryDirectory(prefix="acr-gc-emulator-")
        if isinstance(dataset, dict):
            path = Path(self._tmp.name) / "dataset.json"
            path.write_text(json.dumps(dataset), encoding="utf-8")
            dataset = path
        self.dataset_path = None if dataset is None else Path(dataset)
        self.restore_path = None if restore is None else Path(restore)
        self.log_path = Path(self._tmp.name) / "emulator.log"
        self.host = host
        self.startup_timeout = startup_timeout
        args = [python, "-m", "acr_gc.cli", "emulator", "serve"]
        if self.restore_path is not None:
            args += ["--restore", str(self.restore_path)]
        else:
            args += ["--dataset", str(self.dataset_path)]
        args += ["--host", host, "--acr-port", str(acr_port), "--oss-port", str(oss_port),
                 "--registry-port", str(registry_port)]
        for flag, value in (
            ("--day-seconds", day_seconds),
            ("--latency-ms", latency_ms),
            ("--qps", qps),
            ("--fault-rate", fault_rate),
            ("--seed", seed),
            ("--gc-tags-per-second", gc_tags_per_second),
            ("--combination", combination),
            ("--count-regexp", count_regexp),
            ("--regexp-match", regexp_match),
            ("--stat-delay-hours", stat_delay_hours),
        ):
            if value is not None:
                args += [flag, str(value)]
        self.args = args
        self.proc: subprocess.Popen | None = None

    # ---- lifecycle ------------------------------------------------------------------

    def start(self) -> "EmulatorProcess":
        log = open(self.log_path, "wb")
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=log, env=env)
        log.close()
        line = self._read_ready_line()
        self._connected(json.loads(line))
        return self

    def _read_ready_line(self) -> str:
        result: list[bytes] = []
        reader = threading.Thread(target=lambda: result.append(self.proc.stdout.readline()), daemon=True)
        reader.start()
        reader.join(self.startup_timeout)
        if not result or not result[0].strip():
            self.stop()
            raise EmulatorError(f"emulator did not start: {self.log_tail()}")
        return result[0].decode()

    def stop(self) -> None:
        self._disconnect()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()

    def __exit__(self, *exc) -> None:
        self.stop()
        self._tmp.cleanup()

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None
