"""The emulated clock: dataset time that runs ``86400 / day_seconds`` times faster than real time.

Lifecycle expiry and GC timestamps read this clock, so a test can compress days into
seconds (``--day-seconds``) or jump ahead (``POST /_emulator/clock/advance``).
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone


class EmulatedClock:
    def __init__(self, start: datetime, day_seconds: float = 86400.0, monotonic=time.monotonic):
        if day_seconds <= 0:
            raise ValueError("day_seconds must be positive")
        self._start = start.astimezone(timezone.utc)
        self._speed = 86400.0 / day_seconds
        self._monotonic = monotonic
        self._real_start = monotonic()
        self._offset = timedelta()

    def now(self) -> datetime:
        elapsed = (self._monotonic() - self._real_start) * self._speed
        return self._start + self._offset + timedelta(seconds=elapsed)

    def advance(self, days: float) -> datetime:
        if days < 0:
            raise ValueError("the clock only moves forward")
        self._offset += timedelta(days=days)
        return self.now()

    def reset(self, start: datetime) -> None:
        self._start = start.astimezone(timezone.utc)
        self._real_start = self._monotonic()
        self._offset = timedelta()

    @property
    def day_seconds(self) -> float:
        return 86400.0 / self._speed

    def to_dump(self) -> dict:
        return {"now": self.now().isoformat(), "day_seconds": self.day_seconds}

    @classmethod
    def from_dump(cls, doc: dict) -> "EmulatedClock":
        """A clock that goes on from the dumped emulated time at the dumped speed."""
        return cls(datetime.fromisoformat(doc["now"]), float(doc["day_seconds"]))
