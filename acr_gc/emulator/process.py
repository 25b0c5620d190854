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
from typing import Any

import httpx


class EmulatorError(RuntimeError):
    pass


class EmulatorProcess:
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
        self.acr_endpoint = self.oss_endpoint = self.registry_endpoint = self.admin_url = ""
        self._http: httpx.Client | None = None

    # ---- lifecycle ------------------------------------------------------------------

    def start(self) -> "EmulatorProcess":
        log = open(self.log_path, "wb")
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=log, env=env)
        log.close()
        line = self._read_ready_line()
        ready = json.loads(line)
        self.acr_endpoint = ready["acr_endpoint"]
        self.oss_endpoint = ready["oss_endpoint"]
        self.registry_endpoint = ready["registry_endpoint"]
        self.admin_url = ready["admin"]
        self._http = httpx.Client(base_url=self.admin_url + "/", timeout=60.0, trust_env=False)
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
        if self._http is not None:
            self._http.close()
            self._http = None
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()

    def __enter__(self) -> "EmulatorProcess":
        return self.start()

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

    @property
    def acr_port(self) -> int:
        return int(self.acr_endpoint.rsplit(":", 1)[1])

    @property
    def oss_port(self) -> int:
        return int(self.oss_endpoint.rsplit(":", 1)[1])

    @property
    def registry_port(self) -> int:
        return int(self.registry_endpoint.rsplit(":", 1)[1])

    # ---- admin helpers --------------------------------------------------------------

    def _call(self, method: str, path: str, body: Any = None) -> dict:
        if self._http is None:
            raise EmulatorError("emulator not started")
        if method == "POST":  # the admin API takes POSTs as application/json only
            body = {} if body is None else body
        response = self._http.request(method, path, json=body) if body is not None else self._http.request(method, path)
        if response.status_code >= 400:
            raise EmulatorError(f"{method} {path}: HTTP {response.status_code}: {response.text}")
        return response.json()

    def reset(self) -> dict:
        """Back to the start dataset and the start fault settings."""
        return self._call("POST", "reset")

    def load(self, dataset: dict | str | Path) -> dict:
        if not isinstance(dataset, dict):
            dataset = json.loads(Path(dataset).read_text(encoding="utf-8"))
        return self._call("POST", "load", dataset)

    def advance_clock(self, days: float) -> dict:
        return self._call("POST", "clock/advance", {"days": days})

    def set_faults(self, **changes: Any) -> dict:
        """Partial update: fault_rate, latency_ms, qps, gc_fail_after_tags, gc_tags_per_second, seed, hold ({"action", "skip"} or None),
        business_error_rate, business_error_codes, stat_delay_hours."""
        return self._call("POST", "faults", changes)

    def set_readings(self, **readings: str) -> dict:
        """Play other readings of the lifecycle rules from now on (``combination``,
        ``count_regexp``, ``regexp_match``; those not given are kept)."""
        return self._call("POST", "/readings", readings)

    def truth(self, at: str | None = None) -> dict:
        """GET /_emulator/truth; with ``at`` (ISO-8601) each bucket also carries ``stat_at``:
        its GetBucketStat figures as of that emulated moment."""
        return self._call("GET", "truth" if at is None else f"truth?at={at}")

    def dump(self, secrets: bool = True) -> dict:
        """The complete state (GET /_emulator/dump), for ``restore`` here or in a new process
        (which needs the secrets: asked for unless ``secrets`` is False)."""
        return self._call("GET", "dump?secrets=true" if secrets else "dump")

    def restore(self, document: dict) -> dict:
        return self._call("POST", "restore", document)

    def registry_stats(self) -> dict:
        """What the registry port served: manifest fetches (total and by digest), tokens, refusals."""
        return self._registry("GET", "registry")

    def expire_registry_tokens(self) -> dict:
        """Expire every registry credential and bearer token issued so far."""
        return self._registry("POST", "registry/expire")

    def _registry(self, method: str, path: str) -> dict:
        response = httpx.request(method, f"http://{self.registry_endpoint}/_emulator/{path}", timeout=60.0,
                                 trust_env=False)
        if response.status_code >= 400:
            raise EmulatorError(f"{method} {path}: HTTP {response.status_code}: {response.text}")
        return response.json()

    def objects(self, bucket: str) -> dict:
        """{"current": [{key, size, version_id}], "noncurrent": [...]} of one bucket."""
        return self._call("GET", f"objects/{bucket}")
