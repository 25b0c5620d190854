"""The one path every SDK call takes: rate limit, timeout, retries, error wrapping.

* A process-wide rate limiter per service (``ACR``, ``OSS``: they are separate quotas),
  shared by every thread of the process, at ``api.qps`` calls per second
  (pyrate-limiter, sliding window). Every *attempt* takes a slot, retries included.
* Retries with exponential backoff and full jitter (tenacity), ``api.retries`` retries
  after the first attempt, on: throttling (ACR ``Throttling*``, OSS 503
  ``TotalQpsLimitExceeded`` …, HTTP 429), HTTP 5xx, dropped/reset/refused connections,
  connect/read timeouts and 2xx bodies cut short. Never on other 4xx.
  Non-idempotent calls (``idempotent=False``) are not retried when the failure leaves it
  unknown whether the server executed the request (read timeout, reset after sending).
* Per-call connect/read timeouts through the SDK's ``RuntimeOptions``.
* The SDK's own retry is off (``Config.retry_options`` unset): this is the only retry loop.
* Counters for benchmarks and reports: :func:`stats`.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from pyrate_limiter import InMemoryBucket, Limiter, Rate
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from acr_gc.cloud.errors import CloudError, classify, to_cloud_error
from acr_gc.config import Api
from acr_gc.netloc import is_ip, is_loopback

log = logging.getLogger(__name__)

T = TypeVar("T")


# --------------------------------------------------------------------------- counters


@dataclass
class CallStats:
    calls: int = 0  # logical calls (one per call())
    attempts: int = 0  # HTTP attempts, retries included
    retries: int = 0  # attempts after the first
    throttled_retries: int = 0  # retries caused by throttling
    failures: int = 0  # calls that raised in the end
    by_kind: dict[str, int] = field(default_factory=dict)  # retried failures: throttled, server, network, business
    by_action: dict[str, int] = field(default_factory=dict)  # logical calls per "SERVICE:Action"
    by_scope: dict[str, int] = field(default_factory=dict)  # logical calls per instance or bucket

    def copy(self) -> CallStats:
        return CallStats(self.calls, self.attempts, self.retries, self.throttled_retries, self.failures,
                         dict(self.by_kind), dict(self.by_action), dict(self.by_scope))


_stats = CallStats()
_stats_lock = threading.Lock()


def stats() -> CallStats:
    """A snapshot of the process-wide counters."""
    with _stats_lock:
        return _stats.copy()


def reset_stats() -> None:
    global _stats
    with _stats_lock:
        _stats = CallStats()


def _bump(**deltas: int) -> None:
    with _stats_lock:
        for key, delta in deltas.items():
            setattr(_stats, key, getattr(_stats, key) + delta)


def _bump_kind(kind: str) -> None:
    with _stats_lock:
        _stats.by_kind[kind] = _stats.by_kind.get(kind, 0) + 1


def _bump_call(service: str, action: str, resource: str) -> None:
    """One logical call, counted in total, per action and per scope (the resource's first
    segment: the instance id for ACR, the bucket for OSS)."""
    action_key = f"{service}:{action}"
    scope = resource.split("/", 1)[0].split(":", 1)[0]
    with _stats_lock:
        _stats.calls += 1
        _stats.by_action[action_key] = _stats.by_action.get(action_key, 0) + 1
        _stats.by_scope[scope] = _stats.by_scope.get(scope, 0) + 1


# --------------------------------------------------------------------------- rate limiter


def _rate_for(qps: float) -> Rate:
    """``qps`` as a pyrate-limiter Rate: ``limit`` calls per ``interval`` ms (limit >= 1)."""
    limit = max(1, math.floor(qps))
    interval_ms = max(1, round(1000 * limit / qps))
    return Rate(limit, interval_ms)


class _SharedLimiters:
    """One limiter per service for the whole process; rebuilt only when the rate changes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._limiters: dict[str, tuple[float, Limiter]] = {}

    def get(self, service: str, qps: float) -> Limiter:
        with self._lock:
            current = self._limiters.get(service)
            if current is None or current[0] != qps:
                limiter = Limiter(InMemoryBucket([_rate_for(qps)]), buffer_ms=5)
                self._limiters[service] = (qps, limiter)
                return limiter
            return current[1]

    def clear(self) -> None:
        with self._lock:
            self._limiters.clear()


_limiters = _SharedLimiters()


def acquire(service: str, qps: float) -> None:
    """Block until the process-wide limiter of ``service`` grants one call."""
    limiter = _limiters.get(service, qps)
    while not limiter.try_acquire(service, blocking=True):  # pragma: no cover - blocking never fails
        time.sleep(0.01)


def reset_limiters() -> None:
    _limiters.clear()


# --------------------------------------------------------------------------- backoff


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with "equal jitter": sleep c/2 + U(0, c/2), c = min(cap, base * 2**n).

    Half of each wait is certain, half spread: clients throttled together still drift
    apart, and the retries of one call are guaranteed to span a short outage (an endpoint
    restarting, a 5xx burst) — with the defaults, 6 retries wait at least 6.3 s in all.
    Full jitter has no such floor: simulated, 1 % of calls gave up within a 2 s outage."""

    base_s: float = 0.2
    cap_s: float = 10.0
    floor_s: float = 0.02

    def delay(self, retry_number: int, retry_after_s: float | None = None, rng: random.Random | None = None) -> float:
        rng = rng or random
        ceiling = min(self.cap_s, self.base_s * (2 ** max(0, retry_number - 1)))
        delay = max(self.floor_s, ceiling / 2 + rng.uniform(0, ceiling / 2))
        if retry_after_s is not None and retry_after_s > 0:
            delay = max(delay, min(retry_after_s, self.cap_s))
        return delay


DEFAULT_BACKOFF = Backoff()


# --------------------------------------------------------------------------- the call path


class _Attempt(Exception):
    """Internal: a classified failure of one attempt, carried through tenacity."""

    def __init__(self, error: CloudError, retry: bool, retry_after_s: float | None) -> None:
        super().__init__(str(error))
        self.error = error
        self.retry = retry
        self.retry_after_s = retry_after_s


def call(
    service: str,
    action: str,
    resource: str,
    fn: Callable[[], T],
    *,
    api: Api,
    idempotent: bool = True,
    backoff: Backoff = DEFAULT_BACKOFF,
) -> T:
    """Run ``fn`` (one SDK call) under the shared limiter, with retries; raise CloudError.

    ``resource`` names what the call is about (``cri-demo/ns/repo``, ``bucket/key``), for
    the error message. ``fn`` is called once per attempt and must build its own request.
    """
    _bump_call(service, action, resource)
    attempts = 0

    def attempt() -> T:
        nonlocal attempts
        acquire(service, api.qps)
        attempts += 1
        _bump(attempts=1)
        try:
            return fn()
        except CloudError as err:  # raised by a result check inside fn (e.g. IsSuccess false)
            raise _Attempt(err, err.retryable, None) from None
        except Exception as exc:  # noqa: BLE001 - every SDK failure is classified here
            c = classify(exc)
            retry = c.retryable and (idempotent or not c.ambiguous)
            err = to_cloud_error(c, service, action, resource, attempts=attempts)
            retry_after = getattr(_inner(exc), "retry_after", None)
            try:
                retry_after_s = float(retry_after) / 1000.0 if retry_after else None
            except (TypeError, ValueError):
                retry_after_s = None
            raise _Attempt(err, retry, retry_after_s) from None

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        retry_after = exc.retry_after_s if isinstance(exc, _Attempt) else None
        return backoff.delay(state.attempt_number, retry_after)

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _Attempt):
            throttled = exc.error.kind == "throttled"
            _bump(retries=1, throttled_retries=1 if throttled else 0)
            _bump_kind(_retry_kind(exc.error))
            log.debug("retrying %s %s on %s after %s (attempt %d)", service, action, resource,
                      exc.error.code, state.attempt_number)

    retrying = Retrying(
        stop=stop_after_attempt(api.retries + 1),
        wait=wait,
        retry=retry_if_exception(lambda e: isinstance(e, _Attempt) and e.retry),
        before_sleep=before_sleep,
        reraise=True,
    )
    try:
        return retrying(attempt)
    except _Attempt as failed:
        _bump(failures=1)
        err = failed.error
        err.attempts = attempts
        err.args = (str(err),)
        raise err from None


def _retry_kind(err: CloudError) -> str:
    """What a retry is counted as: ``business`` for an error inside an HTTP 200 (IsSuccess
    false), else throttled, server (5xx) or network."""
    if err.http_status == 200:
        return "business"
    if err.kind == "unavailable":
        return "server" if err.http_status else "network"
    return err.kind


def _inner(exc: BaseException) -> BaseException:
    return getattr(exc, "inner_exception", None) or exc


# --------------------------------------------------------------------------- helpers for adapters


def runtime_timeouts_ms(api: Api) -> tuple[int, int]:
    """(connect, read) timeouts in milliseconds for the SDK RuntimeOptions."""
    read = max(1, int(api.timeout_s * 1000))
    connect = min(read, 10_000)
    return connect, read


def split_endpoint(endpoint: str) -> tuple[str | None, str]:
    """``http://h:p/`` → (``http``, ``h:p``); ``h:p`` → (None, ``h:p``)."""
    scheme = None
    if "://" in endpoint:
        scheme, endpoint = endpoint.split("://", 1)
        scheme = scheme.lower()
    return scheme, endpoint.rstrip("/")


def protocol_for(scheme: str | None, host: str) -> str:
    """HTTP only to this machine (the emulator); HTTPS to anything else, IP addresses
    included: requests carry signatures and responses carry tags and policies, and a
    network between is no place for plain HTTP."""
    loopback = is_loopback(host)
    if scheme == "http" and not loopback:
        raise ValueError(f"endpoint {host}: plain HTTP is used only for a loopback endpoint "
                         "(localhost, 127.0.0.0/8, ::1); use https")
    return (scheme or ("http" if loopback else "https")).upper()


def is_loopback_or_ip(endpoint: str) -> bool:
    """True for ``127.0.0.1:9101``, ``localhost:9101``, ``[::1]:9101``, ``10.0.0.5:80``: the emulator."""
    return is_loopback(endpoint) or is_ip(endpoint)


def pool_size(api: Api) -> int:
    """Connections the SDK keeps per endpoint (its ``max_idle_conns``).

    The limiter lets up to ``qps`` calls start at the top of each one-second window, from
    as many threads as the steps run (several batches, each ``api.concurrency`` wide): a
    pool smaller than that closes the surplus connections after every burst — one
    "Connection pool is full, discarding connection" warning each — and opens them again
    a second later."""
    return max(40, api.concurrency * 2, math.ceil(api.qps))
