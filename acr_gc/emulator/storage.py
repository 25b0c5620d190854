"""Backend state of the emulated OSS: buckets, object versions, lifecycle expiry, stat.

No wire format here (that is ``oss_wire``): this module is the ground truth the tests
compare against. Versioning follows OSS: with versioning Enabled a delete adds a delete
marker and the old version becomes *noncurrent* (still billed, still counted by
GetBucketStat) until a lifecycle rule's noncurrent days have passed.
"""

from __future__ import annotations

import base64
import bisect
import hashlib
import itertools
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from acr_gc.emulator import dataset as ds
from acr_gc.emulator import policy as bucket_policy
from acr_gc.emulator import lifecycle


class NoSuchKey(KeyError):
    """The key (or the version asked for) does not exist."""


@dataclass
class ObjectVersion:
    key: str
    version_id: str
    size: int
    last_modified: datetime
    etag: str
    data: bytes | None = None  # None: synthetic content, served as ``size`` zero bytes
    content_type: str = "application/octet-stream"
    delete_marker: bool = False
    noncurrent_since: datetime | None = None
    tags: dict[str, str] | None = None  # object tagging; lifecycle Tag filters match on it

    @property
    def content(self) -> bytes:
        return self.data if self.data is not None else bytes(self.size)

    def to_dump(self) -> dict:
        return {
            "version_id": self.version_id,
            "size": self.size,
            "last_modified": self.last_modified.isoformat(),
            "etag": self.etag,
            "data": None if self.data is None else base64.b64encode(self.data).decode("ascii"),
            "content_type": self.content_type,
            "delete_marker": self.delete_marker,
            "noncurrent_since": None if self.noncurrent_since is None else self.noncurrent_since.isoformat(),
            "tags": self.tags,
        }

    @classmethod
    def from_dump(cls, key: str, doc: dict) -> "ObjectVersion":
        since = doc["noncurrent_since"]
        return cls(
            key=key,
            version_id=str(doc["version_id"]),
            size=int(doc["size"]),
            last_modified=datetime.fromisoformat(doc["last_modified"]),
            etag=str(doc["etag"]),
            data=None if doc["data"] is None else base64.b64decode(doc["data"], validate=True),
            content_type=str(doc["content_type"]),
            delete_marker=bool(doc["delete_marker"]),
            noncurrent_since=None if since is None else datetime.fromisoformat(since),
            tags=None if doc.get("tags") is None else {str(k): str(v) for k, v in doc["tags"].items()},
        )


@dataclass
class BucketStat:
    live_bytes: int
    noncurrent_bytes: int
    live_objects: int
    noncurrent_objects: int

    @property
    def storage_bytes(self) -> int:
        return self.live_bytes + self.noncurrent_bytes

    @property
    def object_count(self) -> int:
        return self.live_objects + self.noncurrent_objects


_version_counter = itertools.count(1)


def _new_version_id() -> str:
    return f"CAEQ{next(_version_counter):012d}"


def _continue_version_ids_after(version_ids) -> None:
    """New version ids must not repeat those a restored bucket already holds."""
    global _version_counter
    used = [int(v[4:]) for v in version_ids if v.startswith("CAEQ") and v[4:].isdigit()]
    _version_counter = itertools.count(max([next(_version_counter), *(n + 1 for n in used)]))


@dataclass
class Bucket:
    name: str
    created: datetime
    region: str = "cn-hangzhou"
    versioning: str | None = None  # None | "Enabled" | "Suspended"
    lifecycle: list[ds.BucketLifecycleRule] = field(default_factory=list)
    policy: str | None = None  # the policy document exactly as last put (JSON text)
    owner: str = ""  # the owning account's UID: its root key is exempt from the policy
    # key -> versions, oldest first; the last one is current unless it is a delete marker
    _versions: dict[str, list[ObjectVersion]] = field(default_factory=dict)
    _lifecycle_checked: datetime | None = None
    # earliest time anything can expire (None: unknown, scan on the next apply_lifecycle)
    _next_due: datetime | None = field(default=None, repr=False)
    _lifecycle_sig: tuple | None = field(default=None, repr=False)
    _sorted_keys: list[str] | None = field(default=None, repr=False)  # cache; None after the key set changed
    # every change of the stat figures since the history started: (when, bytes, objects,
    # delete markers) deltas, so GetBucketStat can answer as of an earlier time (stat delay)
    _history: list[tuple[datetime, int, int, int]] = field(default_factory=list, repr=False)

    def _log(self, when: datetime, removed=(), added=()) -> None:
        """Record the stat delta of versions removed and added at ``when``."""
        delta = [0, 0, 0]
        for sign, versions in ((-1, removed), (1, added)):
            for v in versions:
                if v.delete_marker:
                    delta[2] += sign
                else:
                    delta[0] += sign * v.size
                    delta[1] += sign
        if any(delta):
            self._history.append((when, *delta))

    # ---- who may ------------------------------------------------------------------

    def denies(self, principal: str, action: str, key: str | None) -> bool:
        """Whether the bucket policy refuses ``action`` on ``key`` (None: the bucket) to
        ``principal``. As OSS: the owner account's root is exempt from the policy; everyone
        else, the registry's own role included, is bound by its Deny statements."""
        if bucket_policy.is_account_root(principal, self.owner):
            return False
        return bucket_policy.is_denied(self.policy, principal, action, self.name, key, self.region)

    @property
    def registry_principal(self) -> str:
        """Who the registry is when it writes or deletes here (GC, sweeps, pushes)."""
        return bucket_policy.registry_principal(self.owner)

    # ---- writes -------------------------------------------------------------------

    def put_object(
        self,
        key: str,
        now: datetime,
        data: bytes | None = None,
        size: int | None = None,
        content_type: str = "application/octet-stream",
        tags: dict[str, str] | None = None,
    ) -> ObjectVersion:
        """Store a new current version; ``size`` without ``data`` stores synthetic content."""
        if data is not None:
            size = len(data)
            etag = hashlib.md5(data).hexdigest().upper()
        else:
            etag = hashlib.md5(f"{key}:{size}".encode()).hexdigest().upper()
        version = ObjectVersion(
            key=key,
            version_id=self._version_id_for_write(),
            size=int(size or 0),
            last_modified=now,
            etag=etag,
            data=data,
            content_type=content_type,
            tags=tags,
        )
        self._push(key, version, now)
        return version

    def delete_object(self, key: str, now: datetime, version_id: str | None = None) -> ObjectVersion | None:
        """Delete as OSS does; returns the delete marker created, if any.

        With a ``version_id`` that version is removed permanently. Without one: an
        unversioned bucket removes the object, a versioned one adds a delete marker.
        Deleting a missing key is not an error (OSS answers 204 either way).
        """
        versions = self._versions.get(key)
        if version_id is not None:
            if not versions:
                return None
            kept = [v for v in versions if v.version_id != version_id]
            if len(kept) != len(versions):
                self._log(now, removed=[v for v in versions if v.version_id == version_id])
                self._next_due = None  # an older version may become current (and already expired)
                removed_current = versions[-1].version_id == version_id
                if kept:
                    self._versions[key] = kept
                    if removed_current:
                        kept[-1].noncurrent_since = None
                else:
                    del self._versions[key]
                    self._sorted_keys = None
            return None
        if self.versioning is None:
            if (popped := self._versions.pop(key, None)) is not None:
                self._log(now, removed=popped)
                self._sorted_keys = None
            return None
        if versions and versions[-1].delete_marker and self.versioning == "Enabled":
            return None
        marker = ObjectVersion(
            key=key,
            version_id=self._version_id_for_write(),
            size=0,
            last_modified=now,
            etag="",
            delete_marker=True,
        )
        self._push(key, marker, now)
        return marker

    def _version_id_for_write(self) -> str:
        return _new_version_id() if self.versioning == "Enabled" else "null"

    def _push(self, key: str, version: ObjectVersion, now: datetime) -> None:
        # every expiry a write creates is at least the shortest rule's days after it
        if self._next_due is not None and self.lifecycle:
            days = [d for r in self.lifecycle for d in (r.expiration_days, r.noncurrent_days) if d is not None]
            if days:
                self._next_due = min(self._next_due, now + timedelta(days=min(days)))
            if any(r.created_before_date is not None and now < r.created_before_date for r in self.lifecycle):
                self._next_due = None  # written before a CreatedBeforeDate: expirable at once
        if key not in self._versions:
            self._sorted_keys = None
        versions = self._versions.setdefault(key, [])
        before = list(versions)
        if self.versioning is None:
            versions.clear()
        elif self.versioning == "Suspended":
            # a suspended bucket overwrites the "null" version and keeps the others
            versions[:] = [v for v in versions if v.version_id != "null"]
        if versions and versions[-1].noncurrent_since is None:
            versions[-1].noncurrent_since = now
        versions.append(version)
        kept = {id(v) for v in versions}
        self._log(now, removed=[v for v in before if id(v) not in kept], added=[version])

    # ---- reads --------------------------------------------------------------------

    def current(self, key: str) -> ObjectVersion | None:
        versions = self._versions.get(key)
        if not versions or versions[-1].delete_marker:
            return None
        return versions[-1]

    def get_object(self, key: str, version_id: str | None = None) -> ObjectVersion:
        if version_id is None:
            found = self.current(key)
        else:
            found = next((v for v in self._versions.get(key, []) if v.version_id == version_id), None)
        if found is None or found.delete_marker:
            raise NoSuchKey(key)
        return found

    def versions(self, key: str) -> list[ObjectVersion]:
        """Every version and delete marker of one key, newest first (empty when none)."""
        return list(reversed(self._versions.get(key, [])))

    def keys(self, prefix: str = "", after: str = ""):
        """Every key with any version or marker, sorted, starting with ``prefix`` and > ``after``.

        A generator over a cached sorted list (rebuilt only when the key set changes), so
        paging through a large bucket does not sort it again for every page.
        """
        if self._sorted_keys is None:
            self._sorted_keys = sorted(self._versions)
        keys = self._sorted_keys
        start = bisect.bisect_right(keys, after) if after >= prefix else bisect.bisect_left(keys, prefix)
        for i in range(start, len(keys)):
            key = keys[i]
            if not key.startswith(prefix):
                if key > prefix:
                    return
                continue
            if key in self._versions:  # tolerate a write during iteration
                yield key

    def current_keys(self, prefix: str = "", after: str = "") -> list[str]:
        """Keys with a current (non-deleted) version, sorted as OSS lists them."""
        return [k for k in self.keys(prefix, after) if not self._versions[k][-1].delete_marker]

    def iter_current_keys(self, prefix: str = "", after: str = ""):
        """``current_keys`` lazily (stop early when a page is full)."""
        return (k for k in self.keys(prefix, after) if not self._versions[k][-1].delete_marker)

    def all_versions(self, prefix: str = "", after: str = "") -> list[ObjectVersion]:
        """Every version and delete marker, by key, newest first within a key (ListObjectVersions order)."""
        out: list[ObjectVersion] = []
        for key in self.keys(prefix, after):
            out.extend(reversed(self._versions[key]))
        return out

    def is_latest(self, version: ObjectVersion) -> bool:
        versions = self._versions.get(version.key)
        return bool(versions) and versions[-1] is version

    # ---- lifecycle and stat ----------------------------------------------------------

    def apply_lifecycle(self, now: datetime) -> None:
        """Expire what the lifecycle rules say has expired by ``now`` (OSS runs this daily).

        Only Enabled rules act, each on the versions it selects (prefix, tags, Not, size:
        :mod:`acr_gc.emulator.lifecycle`). An object expires ``expiration_days`` after it
        was last modified, or at once when last modified before ``created_before_date``
        (in a versioned bucket: a delete marker is added *at that moment*, so the
        version's noncurrent days count from its expiry, not from when this method
        happened to run); a noncurrent version is removed ``noncurrent_days`` after it
        became noncurrent; a delete marker with nothing behind it is removed
        ``noncurrent_days`` after it was made. All expiration rules run before the
        noncurrent rules, so one call after a long clock jump settles everything that is
        due. Calls before the next due time are no-ops.
        """
        if not self.lifecycle:
            return
        sig = tuple(rule.model_dump_json() for rule in self.lifecycle)
        if sig == self._lifecycle_sig and self._next_due is not None and now < self._next_due:
            return
        self._lifecycle_sig = sig
        next_due: datetime | None = None

        def note(due: datetime) -> None:
            nonlocal next_due
            if next_due is None or due < next_due:
                next_due = due

        rules = [r for r in self.lifecycle if lifecycle.enabled(r)]
        for rule in rules:
            if rule.expiration_days is None and rule.created_before_date is None:
                continue
            for key in [k for k in self._versions if k.startswith(rule.prefix)]:
                cur = self.current(key)
                if cur is None or not lifecycle.acts_on(rule, key, cur.size, cur.tags):
                    continue
                if rule.created_before_date is not None:
                    if cur.last_modified < rule.created_before_date:
                        self.delete_object(key, cur.last_modified)  # eligible since it was written
                    continue
                due = cur.last_modified + timedelta(days=rule.expiration_days)
                if due <= now:
                    self.delete_object(key, due)
                else:
                    note(due)
        for rule in rules:
            if rule.noncurrent_days is None:
                continue
            days = timedelta(days=rule.noncurrent_days)
            for key in [k for k in self._versions if k.startswith(rule.prefix)]:
                versions = self._versions[key]
                kept = []
                for v in versions[:-1]:
                    if v.noncurrent_since is not None and lifecycle.acts_on(rule, key, v.size, v.tags):
                        if v.noncurrent_since + days <= now:
                            self._log(v.noncurrent_since + days, removed=[v])
                            continue
                        note(v.noncurrent_since + days)
                    kept.append(v)
                kept.append(versions[-1])
                # a delete marker left alone with nothing behind it is removed too (expired marker)
                if len(kept) == 1 and kept[0].delete_marker and lifecycle.acts_on(rule, key, 0, None):
                    due = kept[0].last_modified + days
                    if due <= now:
                        self._log(due, removed=kept)
                        kept = []
                    else:
                        note(due)
                if kept:
                    self._versions[key] = kept
                else:
                    del self._versions[key]
                    self._sorted_keys = None
        self._next_due = next_due if next_due is not None else datetime.max.replace(tzinfo=now.tzinfo)
        self._lifecycle_checked = now

    # ---- dump and restore -------------------------------------------------------------

    def to_dump(self) -> dict:
        return {
            "name": self.name,
            "created": self.created.isoformat(),
            "region": self.region,
            "versioning": self.versioning,
            "lifecycle": [rule.model_dump(mode="json", by_alias=True) for rule in self.lifecycle],
            "policy": self.policy,
            "owner": self.owner,
            "objects": {key: [v.to_dump() for v in versions] for key, versions in self._versions.items()},
            "stat_history": [[at.isoformat(), *delta] for at, *delta in self._history],
        }

    @classmethod
    def from_dump(cls, doc: dict) -> "Bucket":
        if doc["versioning"] not in (None, "Enabled", "Suspended"):
            raise ValueError(f"bucket {doc['name']}: versioning {doc['versioning']!r}")
        bucket = cls(
            name=str(doc["name"]),
            created=datetime.fromisoformat(doc["created"]),
            region=str(doc["region"]),
            versioning=doc["versioning"],
            lifecycle=[ds.BucketLifecycleRule.model_validate(rule) for rule in doc["lifecycle"]],
            policy=doc["policy"],
            owner=str(doc["owner"]),
        )
        for key, versions in doc["objects"].items():
            if not versions:
                raise ValueError(f"bucket {bucket.name}: object {key!r} has no versions")
            bucket._versions[key] = [ObjectVersion.from_dump(key, v) for v in versions]
        bucket._history = [(datetime.fromisoformat(at), int(b), int(o), int(m))
                           for at, b, o, m in doc.get("stat_history", [])]
        return bucket

    def stat_as_of(self, when: datetime) -> tuple[int, int, int]:
        """(storage bytes, objects, delete markers) as they were at ``when``: today's figures
        less every change recorded after it. Before the history starts (the dataset's load),
        the loaded state is taken to have held all along."""
        st = self.stat()
        figures = [st.storage_bytes, st.object_count, self.delete_marker_count()]
        for at, *delta in self._history:
            if at > when:
                for i, d in enumerate(delta):
                    figures[i] -= d
        return figures[0], figures[1], figures[2]

    def delete_marker_count(self) -> int:
        return sum(1 for versions in self._versions.values() for v in versions if v.delete_marker)

    def start_history(self) -> None:
        """From now on changes are history (what the dataset loaded is not)."""
        self._history = []

    def stat(self) -> BucketStat:
        live_bytes = noncurrent_bytes = live_objects = noncurrent_objects = 0
        for versions in self._versions.values():
            last = versions[-1]
            for v in versions:
                if v.delete_marker:
                    continue
                if v is last:
                    live_bytes += v.size
                    live_objects += 1
                else:
                    noncurrent_bytes += v.size
                    noncurrent_objects += 1
        return BucketStat(live_bytes, noncurrent_bytes, live_objects, noncurrent_objects)


class Storage:
    """All buckets of the emulated account."""

    def __init__(self) -> None:
        self.buckets: dict[str, Bucket] = {}

    def load(self, buckets: list[ds.Bucket], now: datetime, region_of: dict[str, str] | None = None,
             default_owner: str = "") -> None:
        """``default_owner``: the account of buckets whose dataset entry names none."""
        self.buckets = {}
        for spec in buckets:
            bucket = Bucket(
                name=spec.name,
                created=now,
                region=(region_of or {}).get(spec.name, "cn-hangzhou"),
                versioning=spec.versioning,
                lifecycle=list(spec.lifecycle),
                policy=json.dumps(spec.policy) if spec.policy is not None else None,
                owner=spec.owner or default_owner,
            )
            for extra in spec.extra_objects:
                bucket.put_object(extra.key, now, size=extra.size,
                                  tags={t.key: t.value for t in extra.tags} or None)
            self.buckets[spec.name] = bucket

    def bucket(self, name: str) -> Bucket:
        try:
            return self.buckets[name]
        except KeyError:
            raise NoSuchBucket(name) from None

    def start_history(self) -> None:
        for bucket in self.buckets.values():
            bucket.start_history()

    def apply_lifecycle(self, now: datetime) -> None:
        for bucket in self.buckets.values():
            bucket.apply_lifecycle(now)

    def to_dump(self) -> list[dict]:
        """Every bucket with every object version, delete markers included, oldest first per key."""
        return [bucket.to_dump() for bucket in self.buckets.values()]

    @classmethod
    def from_dump(cls, doc: list[dict]) -> "Storage":
        storage = cls()
        storage.buckets = {b.name: b for b in map(Bucket.from_dump, doc)}
        _continue_version_ids_after(
            v.version_id for b in storage.buckets.values() for versions in b._versions.values() for v in versions
        )
        return storage


class NoSuchBucket(KeyError):
    """No bucket of that name."""
