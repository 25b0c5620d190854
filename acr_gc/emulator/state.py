"""The whole emulated cloud in one object: clock, credentials, OSS storage, ACR registry.

Wire modules and admin endpoints only ever touch the cloud through this object, and
only from the server's event loop thread, so no locking is needed.
"""

from __future__ import annotations

from acr_gc.emulator import dataset as ds
from acr_gc.emulator.clock import EmulatedClock
from acr_gc.emulator.registry import Registry
from acr_gc.emulator.storage import Storage


class EmulatorState:
    def __init__(self, dataset: ds.Dataset, day_seconds: float = 86400.0):
        self.day_seconds = day_seconds
        self.clock = EmulatedClock(dataset.clock, day_seconds)
        self.load(dataset)

    def load(self, dataset: ds.Dataset) -> None:
        """Replace everything with ``dataset`` (used at start, by reset and by load)."""
        self.dataset = dataset
        self.clock.reset(dataset.clock)
        now = self.clock.now()
        self.credentials: dict[str, ds.Credential] = {c.access_key_id: c for c in dataset.credentials}
        self.storage = Storage()
        self.storage.load(
            dataset.buckets, now, region_of={inst.bucket: inst.region for inst in dataset.instances}
        )
        self.registry = Registry.from_dataset(dataset, self.storage, now)

    def reset(self) -> None:
        self.load(self.dataset)

    def now(self):
        return self.clock.now()
