"""The release window (DESIGN section 7): how long after GC the bucket's storage drops.

Pure functions, no I/O. The flow reads the bucket's versioning state and lifecycle rules
(:meth:`acr_gc.cloud.oss.OssClient.get_versioning` / ``get_lifecycle``), calls
:func:`release_window` *before any change* (a bucket that can never release blocks the
run unless the config accepts it), and after GC uses :func:`window_end` and
:func:`window_closed` to know when sampling is complete.

Why the window is what it is:

* **No versioning** (``None``): GC's deletes remove objects at once, so storage drops as
  soon as GC deletes; the window is just the margin, which covers OSS's asynchronous
  refresh of GetBucketStat. Expiration rules for *current* objects
  (``expiration_days``) play no part: they delete live objects on their own schedule
  and neither delay nor hasten the release of what GC deleted. (DESIGN's "otherwise the
  expiration rules that apply" is read this way on purpose.)
* **Versioning Enabled**: a delete only adds a delete marker; the data becomes a
  noncurrent version and stays billed until a NoncurrentVersionExpiration rule removes
  it. The window is the *smallest* ``noncurrent_days`` among enabled rules covering the
  registry's prefix (each rule fires on its own, so the earliest one releases), plus the
  margin (OSS runs lifecycle asynchronously, about once a day).
* **Versioning Suspended** is treated exactly like Enabled: objects written while
  versioning was enabled have real version ids, and deleting them now still leaves
  noncurrent versions behind (only a ``null`` version is removed outright). The
  registry's older data is the data GC deletes, so assuming the worst case is right.
* Enabled/Suspended with no such rule: the storage will never drop
  (``never_released``), and the reason says so in words an operator can act on.

**Covering the registry's prefix.** A rule covers the registry when it is Enabled, its
prefix is a prefix of the registry's prefix (``registry_prefix.startswith(rule.prefix)``:
``""`` and ``"docker/"`` cover ``"docker/"``), and nothing else in it can leave one of the
registry's objects out. A *narrower* rule (``"docker/registry/v2/blobs/"``) does not
count: GC deletes blobs *and* manifests and tag links, so partial coverage would leave
some of the deleted data billed forever, and the window would be a lie. For the same
reason a rule does not count when (OSS lifecycle elements):

* it is ``Disabled``;
* it has ``Tag`` elements: it acts only on objects carrying those tags, and the
  registry tags none of its objects;
* its ``Filter/Not`` prefix overlaps the registry's prefix: the objects there (those
  with its tag, when it names one — tags acr-gc cannot see without reading every
  object's tagging) are left out; a Not elsewhere in the bucket is harmless;
* it has ``ObjectSizeGreaterThan`` or ``ObjectSizeLessThan``: the registry's objects
  range from tag links of a few dozen bytes to layers of gigabytes, so any bound
  leaves some out;
* its Expiration has a ``CreatedBeforeDate``: whether OSS then expires noncurrent
  versions of newer objects is not documented, so the rule is not relied on.

When no rule covers, the reason lists why each noncurrent rule did not, so the
operator sees what to change.
The default registry prefix is ``"docker/"`` (the registry keeps everything under
``docker/registry/v2/``); a caller that knows better may pass ``"docker/registry/v2/"``,
which a ``"docker/registry/"`` rule then covers.

**The override** (config ``sampling.window_days``): when set it wins, with no margin
added — the operator gave the exact number of days to wait — and the window is never
"never released" (the reason still warns when the bucket's own rules would never
release, since the override then only decides when sampling stops).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

DEFAULT_REGISTRY_PREFIX = "docker/"


class WindowError(ValueError):
    """Inputs the window cannot be derived from (unknown versioning state, bad rule)."""


@dataclass(frozen=True)
class BucketRule:
    """One bucket lifecycle rule, as far as the window cares.

    The attribute names are exactly those of :class:`acr_gc.cloud.oss.LifecycleRule`.
    """

    id: str
    prefix: str
    status: str  # "Enabled" | "Disabled"
    expiration_days: int | None = None
    noncurrent_days: int | None = None
    tags: tuple[tuple[str, str], ...] = ()
    nots: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = ()  # Filter/Not: (prefix, tags) each
    object_size_greater_than: int | None = None
    object_size_less_than: int | None = None
    created_before_date: str | None = None

    @property
    def enabled(self) -> bool:
        return self.status.strip().lower() == "enabled"

    def covers(self, registry_prefix: str) -> bool:
        """True when the rule acts on every object under ``registry_prefix``."""
        return self.exclusion(registry_prefix) is None

    def exclusion(self, registry_prefix: str) -> str | None:
        """Why the rule may leave some of the registry's objects alone (None: it cannot)."""
        if not self.enabled:
            return f"it is {self.status or 'not Enabled'}"
        if not registry_prefix.startswith(self.prefix):
            return f"its prefix {self.prefix!r} is narrower than {registry_prefix!r}"
        if self.tags:
            return f"it acts only on objects tagged {_tags(self.tags)}"
        for not_prefix, not_tags in self.nots:
            if not_prefix.startswith(registry_prefix) or registry_prefix.startswith(not_prefix):
                tagged = f" tagged {_tags(not_tags)}" if not_tags else ""
                return f"its Filter/Not leaves out objects under {not_prefix!r}{tagged}"
        if self.object_size_greater_than is not None or self.object_size_less_than is not None:
            bounds = [f"> {self.object_size_greater_than} bytes"] if self.object_size_greater_than is not None else []
            bounds += [f"< {self.object_size_less_than} bytes"] if self.object_size_less_than is not None else []
            return f"it acts only on objects of {' and '.join(bounds)}"
        if self.created_before_date:
            return f"its expiration is limited to objects created before {self.created_before_date}"
        return None

    @classmethod
    def from_oss(cls, rule: Any) -> BucketRule:
        """The same as :meth:`of`; named for the adapter's ``acr_gc.cloud.oss.LifecycleRule``."""
        return cls.of(rule)

    @classmethod
    def of(cls, rule: Any) -> BucketRule:
        """A BucketRule from an adapter ``LifecycleRule`` (or anything with the same
        attributes), a mapping with those keys, or a BucketRule.

        A mapping (the dataset's rule) without ``status`` counts as Enabled, as OSS's
        default; an object (the adapter's rule) must carry its status: an empty one is not
        Enabled.
        """
        if isinstance(rule, BucketRule):
            return rule
        if isinstance(rule, Mapping):  # the dataset's shape: tags as {key, value}, one `not`
            get = rule.get
            not_ = get("not") or {}
            status = get("status", "Enabled")
            tags = _tag_pairs(get("tags"))
            nots = ((str(not_.get("prefix") or ""), _tag_pairs(not_.get("tags"))),) if not_ else ()
            created = None if get("created_before_date") is None else str(get("created_before_date"))
        else:  # the adapter's rule: pairs already, any number of Not filters
            def get(name, default=None):
                return getattr(rule, name, default)

            status = get("status", "")
            tags, nots = tuple(get("tags", ()) or ()), tuple(get("nots", ()) or ())
            created = get("created_before_date")
        return cls(
            id=str(get("id", "") or ""),
            prefix=str(get("prefix", "") or ""),
            status=str(status or ""),
            expiration_days=_days(get("expiration_days"), "expiration_days"),
            noncurrent_days=_days(get("noncurrent_days"), "noncurrent_days"),
            tags=tags,
            nots=nots,
            object_size_greater_than=get("object_size_greater_than"),
            object_size_less_than=get("object_size_less_than"),
            created_before_date=created,
        )


def _tag_pairs(tags: Any) -> tuple[tuple[str, str], ...]:
    """Dataset-style ``[{"key", "value"}]`` as (key, value) pairs."""
    return tuple((str(t.get("key", "")), str(t.get("value", ""))) for t in (tags or ()))


def _tags(pairs: Iterable[tuple[str, str]]) -> str:
    return ", ".join(f"{k}={v}" for k, v in pairs)


def _days(value: Any, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise WindowError(f"lifecycle rule {name} must be a non-negative integer, not {value!r}")
    return value


def bucket_rules(rules: Iterable[Any] | None) -> tuple[BucketRule, ...]:
    """The adapter's lifecycle rules (or mappings) as :class:`BucketRule`s, in order."""
    return tuple(BucketRule.of(r) for r in (rules or ()))


@dataclass(frozen=True)
class Window:
    """The release window: storage is expected to have dropped ``days`` days after GC
    finished. ``days`` is None exactly when ``never_released``. ``reason`` explains the
    number for the operator and the report."""

    days: int | None
    never_released: bool
    reason: str


def _normalise_versioning(versioning: str | None) -> str | None:
    if versioning is None or (isinstance(versioning, str) and not versioning.strip()):
        return None
    if isinstance(versioning, str):
        state = versioning.strip().capitalize()
        if state in ("Enabled", "Suspended"):
            return state
    raise WindowError(f"unknown bucket versioning state {versioning!r}: expected Enabled, Suspended or none")


def release_window(
    versioning: str | None,
    rules: Iterable[Any] | None,
    registry_prefix: str = DEFAULT_REGISTRY_PREFIX,
    margin_days: int = 2,
    window_days: int | None = None,
) -> Window:
    """Derive the release window from the bucket (see the module docstring for the rules)."""
    if isinstance(margin_days, bool) or not isinstance(margin_days, int) or margin_days < 0:
        raise WindowError(f"margin_days must be a non-negative integer, not {margin_days!r}")
    if window_days is not None and (
        isinstance(window_days, bool) or not isinstance(window_days, int) or window_days < 0
    ):
        raise WindowError(f"window_days must be a non-negative integer or None, not {window_days!r}")
    state = _normalise_versioning(versioning)
    parsed = bucket_rules(rules)
    shown_prefix = registry_prefix or "the bucket root"

    if state is None:
        derived = Window(
            margin_days,
            False,
            f"versioning is off: storage drops as soon as GC deletes; {margin_days} day(s) of margin "
            "cover OSS's asynchronous storage statistics",
        )
    else:
        noncurrent = [r for r in parsed if r.noncurrent_days is not None]
        covering = [r for r in noncurrent if r.covers(registry_prefix)]
        if covering:
            best = min(covering, key=lambda r: r.noncurrent_days)
            derived = Window(
                best.noncurrent_days + margin_days,
                False,
                f"versioning is {state.lower()}: deleted data becomes noncurrent and lifecycle rule "
                f"{best.id or '(no id)'} (prefix {best.prefix!r}) expires noncurrent versions after "
                f"{best.noncurrent_days} day(s), plus {margin_days} day(s) of margin",
            )
        else:
            why = "; ".join(f"rule {r.id or '(no id)'} does not: {r.exclusion(registry_prefix)}" for r in noncurrent)
            derived = Window(
                None,
                True,
                f"versioning is {state.lower()} and no lifecycle rule expires noncurrent versions of every object "
                f"under {shown_prefix}{f' ({why})' if why else ''}: storage will never drop (never released)",
            )

    if window_days is None:
        return derived
    note = f"sampling.window_days={window_days} overrides the bucket's lifecycle (no margin added)"
    if derived.never_released:
        note += f"; warning: {derived.reason}"
    else:
        note += f"; the bucket alone would give {derived.days} day(s)"
    return Window(window_days, False, note)


def window_end(gc_finished_at: datetime, window: Window) -> datetime | None:
    """When the window closes: GC's finish time plus the window's days; None when the
    storage is never released (sampling then has no natural end)."""
    if window.days is None:
        return None
    return gc_finished_at + timedelta(days=window.days)


def window_closed(now: datetime, end: datetime | None) -> bool:
    """True once ``now`` has reached ``end``; a window with no end never closes."""
    return end is not None and now >= end
