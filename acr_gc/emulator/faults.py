"""Latency, a QPS limit and seeded fault injection, as one ASGI middleware per port.

The same ``FaultSettings`` object is shared by both ports and by the admin endpoints,
so ``POST /_emulator/faults`` changes behaviour at once. Each port renders its errors in
its own service's shape (JSON for ACR, XML for OSS) through the ``render`` callable it
is given. Admin paths (``/_emulator/…``) are exempt from every fault.

Faults come from one ``random.Random(seed)``: with ``fault_rate`` F, a request is faulty
with probability F; half the faulty requests get 503 ServiceUnavailable, the other half
get their connection dropped after the response head (a Content-Length promised and
never delivered), which the SDKs see as a connection error.

Two settings model how the real services answer rather than break:
``business_error_rate`` B makes a share B of the signed ACR requests (after the
signature check, before the action runs) answer HTTP 200 with ``IsSuccess: false`` and a
``Code`` drawn from ``business_error_codes`` (transient codes by default), as ACR EE does
for errors inside a successful HTTP exchange; ``stat_delay_hours`` H makes GetBucketStat
answer the figures as of H emulated hours ago, with that ``LastModifiedTime`` (OSS's
statistics are not real-time).

``gc_tags_per_second`` (null: the server's own ``--gc-tags-per-second``) sets the pace of
GC tasks at runtime, a running one included; 0 pauses them: a task stays RUNNING with
nothing more deleted until the pace is set again. It changes when GC's work happens, never
what it does: the way a test keeps a task "still running" for as long as it needs to look,
on a machine of any speed.

A *hold* (``{"hold": {"action": A, "skip": N}}``) lets the first N requests for the
operation A through and then keeps every later one waiting, unanswered, until the hold
is cleared (``{"hold": null}``, a new hold, or a reset): the way to stop a client at an
exact call and kill it there. A held request whose client disconnects meanwhile is
dropped without ever reaching the service, as a request lost on the way would be.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Awaitable, Callable

from starlette.responses import Response

Renderer = Callable[[int, str, str], Response]
Operation = Callable[[dict], "str | None"]

ADMIN_PREFIX = "/_emulator"
# what ACR EE answers inside an HTTP 200 when something passing went wrong on its side
DEFAULT_BUSINESS_ERROR_CODES = ("SystemError", "Throttling.User", "ServiceUnavailable")


@dataclass
class Hold:
    """One hold: its matching requests are counted, those past ``skip`` wait for ``released``."""

    action: str
    skip: int = 0
    matched: int = 0
    held: int = 0
    released: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    @classmethod
    def from_setting(cls, value: dict) -> "Hold":
        if not isinstance(value, dict) or set(value) - {"action", "skip"} or "action" not in value:
            raise ValueError('hold must be null or {"action": NAME, "skip": N}')
        action, skip = value["action"], value.get("skip", 0)
        if not isinstance(action, str) or not action:
            raise ValueError("hold.action must be a non-empty operation name")
        if not isinstance(skip, int) or isinstance(skip, bool) or skip < 0:
            raise ValueError("hold.skip must be a non-negative integer")
        return cls(action=action, skip=skip)


@dataclass
class FaultSettings:
    latency_ms: float = 0.0
    qps: float = 0.0
    fault_rate: float = 0.0
    seed: int = 0
    gc_fail_after_tags: int | None = None
    gc_tags_per_second: float | None = None  # None: the GC service's own pace; 0: paused
    # seconds the cloud's wall clock is ahead of this machine's (negative: behind): what a
    # client on a machine whose clock drifted meets; request signatures are dated against it
    clock_skew_s: float = 0.0
    hold: Hold | None = None
    business_error_rate: float = 0.0
    business_error_codes: tuple[str, ...] = DEFAULT_BUSINESS_ERROR_CODES
    stat_delay_hours: float = 0.0
    rng: random.Random = field(init=False, repr=False)
    request_counts: Counter = field(default_factory=Counter, repr=False)
    fault_counts: Counter = field(default_factory=Counter, repr=False)
    start: dict = field(init=False, repr=False)  # what /_emulator/reset goes back to

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.start = self.settings()

    def reset(self) -> None:
        """Back to the start settings (a hold is released), counts cleared."""
        self.update(dict(self.start))
        self.request_counts.clear()
        self.fault_counts.clear()

    def update(self, changes: dict) -> None:
        """Partial update from the admin endpoint; unknown keys or bad values raise ValueError."""
        allowed = {"latency_ms", "qps", "fault_rate", "gc_fail_after_tags", "gc_tags_per_second", "seed",
                   "clock_skew_s", "hold", "business_error_rate", "business_error_codes", "stat_delay_hours"}
        unknown = set(changes) - allowed
        if unknown:
            raise ValueError(f"unknown fault settings: {sorted(unknown)}")
        for name in ("latency_ms", "qps"):
            if name in changes:
                value = float(changes[name] or 0)
                if value < 0:
                    raise ValueError(f"{name} must be >= 0")
                setattr(self, name, value)
        if "fault_rate" in changes:
            value = float(changes["fault_rate"] or 0)
            if not 0 <= value < 1:
                raise ValueError("fault_rate must be in [0, 1)")
            self.fault_rate = value
        if "business_error_rate" in changes:
            value = float(changes["business_error_rate"] or 0)
            if not 0 <= value < 1:
                raise ValueError("business_error_rate must be in [0, 1)")
            self.business_error_rate = value
        if "business_error_codes" in changes:
            codes = changes["business_error_codes"]
            if (not isinstance(codes, (list, tuple)) or not codes
                    or not all(isinstance(c, str) and c for c in codes)):
                raise ValueError("business_error_codes must be a non-empty list of codes")
            self.business_error_codes = tuple(codes)
        if "stat_delay_hours" in changes:
            value = float(changes["stat_delay_hours"] or 0)
            if value < 0:
                raise ValueError("stat_delay_hours must be >= 0")
            self.stat_delay_hours = value
        if "gc_fail_after_tags" in changes:
            value = changes["gc_fail_after_tags"]
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
                raise ValueError("gc_fail_after_tags must be a non-negative integer or null")
            self.gc_fail_after_tags = value
        if "gc_tags_per_second" in changes:
            value = changes["gc_tags_per_second"]
            if value is not None:
                value = float(value)
                if not value >= 0:
                    raise ValueError("gc_tags_per_second must be >= 0 (0 pauses GC) or null")
            self.gc_tags_per_second = value
        if "clock_skew_s" in changes:
            self.clock_skew_s = float(changes["clock_skew_s"] or 0)
        if "hold" in changes:
            hold = None if changes["hold"] is None else Hold.from_setting(changes["hold"])
            self.release_hold()
            self.hold = hold
        if "seed" in changes:
            self.seed = int(changes["seed"])
            self.rng = random.Random(self.seed)

    def business_error(self, port: str = "acr") -> str | None:
        """The code of an injected business error for one request, or None (drawn from the
        same seeded source as the other faults; counted as ``<port>:business``)."""
        if self.business_error_rate > 0 and self.rng.random() < self.business_error_rate:
            self.fault_counts[f"{port}:business"] += 1
            return self.rng.choice(self.business_error_codes)
        return None

    def release_hold(self) -> None:
        """End the current hold: every request it keeps waiting proceeds."""
        if self.hold is not None:
            self.hold.released.set()
            self.hold = None

    def settings(self) -> dict:
        """The settings, in the form ``update`` takes."""
        return {
            "latency_ms": self.latency_ms,
            "qps": self.qps,
            "fault_rate": self.fault_rate,
            "seed": self.seed,
            "gc_fail_after_tags": self.gc_fail_after_tags,
            "gc_tags_per_second": self.gc_tags_per_second,
            "clock_skew_s": self.clock_skew_s,
            "hold": None if self.hold is None else {"action": self.hold.action, "skip": self.hold.skip},
            "business_error_rate": self.business_error_rate,
            "business_error_codes": list(self.business_error_codes),
            "stat_delay_hours": self.stat_delay_hours,
        }

    def as_dict(self) -> dict:
        """The settings and what the hold is doing now."""
        return self.settings() | {
            "held": 0 if self.hold is None else self.hold.held,
            "hold_matched": 0 if self.hold is None else self.hold.matched,
        }

    # ---- dump and restore -----------------------------------------------------------

    def to_dump(self) -> dict:
        """Settings, the random source's exact position, the start settings and the counts.

        Held requests belong to connections and are not state: only how many matched."""
        version, internal, gauss = self.rng.getstate()
        return {
            "settings": self.settings(),
            "hold_matched": 0 if self.hold is None else self.hold.matched,
            "rng": [version, list(internal), gauss],
            "start": dict(self.start),
            "request_counts": dict(self.request_counts),
            "fault_counts": dict(self.fault_counts),
        }

    def restore(self, doc: dict) -> None:
        """Become the dumped settings; raises ValueError/TypeError/KeyError before changing anything.

        (Restoring into a throwaway ``FaultSettings()`` is how a dump is checked.)"""
        FaultSettings().update(doc["start"])
        FaultSettings().update(doc["settings"])
        version, internal, gauss = doc["rng"]
        rng_state = (int(version), tuple(int(x) for x in internal), gauss)
        random.Random().setstate(rng_state)
        matched = int(doc["hold_matched"])
        counts = {
            name: Counter({str(k): int(v) for k, v in doc[name].items()}) for name in ("request_counts", "fault_counts")
        }
        self.update(doc["settings"])
        if self.hold is not None:
            self.hold.matched = matched
        self.rng.setstate(rng_state)
        self.start = dict(doc["start"])
        self.request_counts, self.fault_counts = counts["request_counts"], counts["fault_counts"]


class TokenBucket:
    """Capacity ``rate`` tokens, refilled at ``rate`` per second (a burst of about one second)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._tokens: float | None = None
        self._rate = 0.0
        self._last = clock()

    def take(self, rate: float) -> bool:
        now = self._clock()
        if rate != self._rate or self._tokens is None:
            self._rate = rate
            self._tokens = max(rate, 1.0)
            self._last = now
        self._tokens = min(max(rate, 1.0), self._tokens + (now - self._last) * rate)
        self._last = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


@dataclass(frozen=True)
class ServiceErrors:
    """What a throttled or unavailable request looks like on one service."""

    render: Renderer
    throttle: tuple[int, str, str]
    unavailable: tuple[int, str, str] = (
        503,
        "ServiceUnavailable",
        "The request has failed due to a temporary failure of the server.",
    )


class FaultMiddleware:
    """``operation`` names the API operation of a request's ASGI scope (what a hold matches)."""

    def __init__(self, app, settings: FaultSettings, errors: ServiceErrors, name: str, operation: Operation):
        self.app = app
        self.settings = settings
        self.errors = errors
        self.name = name
        self.operation = operation
        self.bucket = TokenBucket()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(ADMIN_PREFIX):
            await self.app(scope, receive, send)
            return
        s = self.settings
        s.request_counts[self.name] += 1
        hold = s.hold
        if hold is not None and self.operation(scope) == hold.action:
            hold.matched += 1
            if hold.matched > hold.skip:
                receive = await _wait_for_release(hold, receive)
                if receive is None:
                    return
        if s.latency_ms > 0:
            await asyncio.sleep(s.latency_ms / 1000.0)
        if s.qps > 0 and not self.bucket.take(s.qps):
            s.fault_counts[f"{self.name}:throttled"] += 1
            await self._respond(self.errors.throttle, scope, receive, send)
            return
        if s.fault_rate > 0 and s.rng.random() < s.fault_rate:
            if s.rng.random() < 0.5:
                s.fault_counts[f"{self.name}:unavailable"] += 1
                await self._respond(self.errors.unavailable, scope, receive, send)
            else:
                s.fault_counts[f"{self.name}:dropped"] += 1
                await _drop(send)
            return
        await self.app(scope, receive, send)

    async def _respond(self, error: tuple[int, str, str], scope, receive, send) -> None:
        await self.errors.render(*error)(scope, receive, send)


async def _wait_for_release(hold: Hold, receive):
    """Keep the request unanswered until ``hold`` is released.

    Returns the ``receive`` to answer it with (the body read while waiting, replayed), or
    None when the client disconnected first. Reading while waiting is what notices the
    disconnect; only this request's coroutine waits, never the event loop.
    """
    buffered: list[dict] = []

    async def read_until_disconnect() -> None:
        while (message := await receive())["type"] != "http.disconnect":
            buffered.append(message)

    hold.held += 1
    reader = asyncio.ensure_future(read_until_disconnect())
    released = asyncio.ensure_future(hold.released.wait())
    try:
        done, _ = await asyncio.wait({reader, released}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        hold.held -= 1
        reader.cancel()
        released.cancel()
    if reader in done:
        return None

    async def replay() -> dict:
        return buffered.pop(0) if buffered else await receive()

    return replay


async def _drop(send: Callable[[dict], Awaitable[None]]) -> None:
    """Promise a body and never send it: the server closes the connection mid-response."""
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"content-length", b"512")],
        }
    )
    await send({"type": "http.response.body", "body": b'{"Req', "more_body": True})
    # returning with the response incomplete makes uvicorn close the transport (one log
    # line, no traceback); the client sees the connection end before Content-Length bytes
