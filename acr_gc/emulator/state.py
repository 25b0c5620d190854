"""The whole emulated cloud in one object: clock, credentials, OSS storage, ACR registry.

Wire modules and admin endpoints only ever touch the cloud through this object, and
only from the server's event loop thread, so no locking is needed.

``dump``/``restore`` carry the complete mutable state across an emulator restart: each
state class (de)serialises itself; this object assembles the document and swaps a
restored state in only once every part of it has been read without error.
"""

from __future__ import annotations

import time

from acr_gc.emulator import dataset as ds
from acr_gc.emulator.clock import EmulatedClock
from acr_gc.emulator.faults import FaultSettings
from acr_gc.emulator.gc import restore_tasks
from acr_gc.emulator.policy import account_of
from acr_gc.emulator.registry import Registry
from acr_gc.emulator.storage import Storage

DUMP_FORMAT = "acr-gc-emulator-dump/1"


class InvalidDump(ValueError):
    """A document ``restore`` cannot take; the state is unchanged."""


class EmulatorState:
    def __init__(self, dataset: ds.Dataset, day_seconds: float = 86400.0, faults: FaultSettings | None = None):
        self.day_seconds = day_seconds
        self.clock = EmulatedClock(dataset.clock, day_seconds)
        self.faults = faults or FaultSettings()
        self.load(dataset)

    def load(self, dataset: ds.Dataset) -> None:
        """Replace everything with ``dataset`` (used at start, by reset and by load)."""
        self.dataset = dataset
        self.clock.reset(dataset.clock)
        now = self.clock.now()
        self.credentials: dict[str, ds.Credential] = {c.access_key_id: c for c in dataset.credentials}
        self.storage = Storage()
        self.storage.load(
            dataset.buckets, now, region_of={inst.bucket: inst.region for inst in dataset.instances},
            default_owner=account_of(dataset.credentials[0].principal),
        )
        self.registry = Registry.from_dataset(dataset, self.storage, now)
        self.storage.start_history()  # the loaded state is the stat history's starting point

    def reset(self) -> None:
        self.load(self.dataset)

    def now(self):
        return self.clock.now()

    def wall_time(self) -> float:
        """The cloud's real wall clock (epoch seconds), which signature dates are checked against:
        this machine's, off by the ``clock_skew_s`` fault. Never the emulated clock, whose
        days may fly by in a demo while signatures must stay fresh in real time."""
        return time.time() + self.faults.clock_skew_s

    # ---- dump and restore (``self.gc`` is attached by ``server.build``) ----

    WITHOUT_SECRETS = ("it was taken without the access key secrets, which the emulator needs to check signatures: "
                       "take it with GET /_emulator/dump?secrets=true")

    def dump(self, secrets: bool = True) -> dict:
        """The complete mutable state as JSON-able data; what ``restore`` takes back.

        ``start_dataset`` is what ``reset`` goes back to, so a restored emulator resets as
        the dumped one would have. Signature nonces seen are not kept (a client retries
        with a fresh one anyway). ``secrets`` False leaves every access key secret out
        (``"secrets": false``): such a dump is for reading, and ``restore`` refuses it."""
        self.storage.apply_lifecycle(self.now())
        start = self.dataset.model_dump(mode="json")
        credentials = [c.model_dump() for c in self.credentials.values()]
        if not secrets:
            for credential in credentials + start["credentials"]:
                credential.pop("access_key_secret", None)
        return {
            "format": DUMP_FORMAT,
            "secrets": secrets,
            "clock": self.clock.to_dump(),
            "start_dataset": start,
            "credentials": credentials,
            "buckets": self.storage.to_dump(),
            "registry": self.registry.to_dump(),
            "gc_tasks": self.gc.dump_tasks(),
            "faults": self.faults.to_dump(),
        }

    def restore(self, doc: dict) -> None:
        """Become exactly the dumped state, the clock going on from the dumped time; GC tasks
        that were running go on in the background. A bad document raises ``InvalidDump``
        and changes nothing."""
        try:
            if doc.get("format") != DUMP_FORMAT:
                raise ValueError(f"format is {doc.get('format')!r}, expected {DUMP_FORMAT!r}")
            if doc.get("secrets") is False:
                raise ValueError(self.WITHOUT_SECRETS)
            clock = EmulatedClock.from_dump(doc["clock"])
            dataset = ds.Dataset.model_validate(doc["start_dataset"])
            credentials = {c.access_key_id: c for c in map(ds.Credential.model_validate, doc["credentials"])}
            storage = Storage.from_dump(doc["buckets"])
            registry = Registry.from_dump(doc["registry"], storage)
            restore_tasks(registry, doc["gc_tasks"])
            FaultSettings().restore(doc["faults"])  # a check: this throwaway takes every setting or raises
        except (LookupError, TypeError, ValueError, AttributeError) as exc:
            raise InvalidDump(f"invalid dump: {type(exc).__name__}: {exc}") from exc
        self.gc.abort_all()
        self.clock, self.day_seconds = clock, clock.day_seconds
        self.dataset, self.credentials, self.storage, self.registry = dataset, credentials, storage, registry
        self.faults.restore(doc["faults"])
        self.gc.resume_active()
