"""``EmulatorHandle``: what a test holds of a running emulator, whichever way it runs.

The endpoints it serves, its ports, and the admin HTTP API (``/_emulator/...``) as
methods. ``EmulatorProcess`` (a child process, for tests that kill or restart it and for
the CLI's demo) and ``ThreadedEmulator`` (the same servers on a thread of the test
process, no start-up of a new interpreter) both build on it, so a test reads the same
whichever it was given: every call goes over HTTP, exactly as a client would send it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx


class EmulatorError(RuntimeError):
    pass


class EmulatorHandle:
    """Endpoints, ports and admin calls; subclasses set the endpoints in ``start``."""

    acr_endpoint = oss_endpoint = registry_endpoint = admin_url = ""
    _http: httpx.Client | None = None

    def _connected(self, ready: dict) -> None:
        """Take the endpoints from the ready line (``server.ready_line``) and open the admin client."""
        self.acr_endpoint = ready["acr_endpoint"]
        self.oss_endpoint = ready["oss_endpoint"]
        self.registry_endpoint = ready["registry_endpoint"]
        self.admin_url = ready["admin"]
        self._http = httpx.Client(base_url=self.admin_url + "/", timeout=60.0, trust_env=False)

    def _disconnect(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None

    def start(self):  # pragma: no cover - each subclass starts its own way
        raise NotImplementedError

    def stop(self) -> None:  # pragma: no cover
        raise NotImplementedError

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

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
