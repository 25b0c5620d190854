"""Ledger tables. Times are timezone-aware UTC; bytes are integers."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import BigInteger, Boolean, DateTime, ForeignKey, Integer, LargeBinary, String, Text, TypeDecorator
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from acr_gc.ledger.states import RunState


class UtcDateTime(TypeDecorator):
    """SQLite forgets time zones; store UTC and hand back aware datetimes on every engine."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("ledger times must be timezone-aware")
        return value.astimezone(timezone.utc)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


class RunStateText(TypeDecorator):
    """``runs.state``: the state's name as text (the column is unchanged), read back as a
    :class:`RunState`, so code compares members, never strings."""

    impl = String(16)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        return None if value is None else RunState(value).value

    def process_result_value(self, value, dialect):
        return None if value is None else RunState(value)


class Base(DeclarativeBase):
    pass


class Run(Base):
    __tablename__ = "runs"

    run_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    instance_id: Mapped[str] = mapped_column(String(128), index=True)
    bucket: Mapped[str] = mapped_column(String(128))
    region: Mapped[str] = mapped_column(String(64))
    # RUNNING while the flow works; then a summary.json state (BLOCKED … COMPLETE)
    state: Mapped[RunState] = mapped_column(RunStateText, default=RunState.RUNNING)
    message: Mapped[str | None] = mapped_column(Text, default=None)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)
    flow_run_id: Mapped[str | None] = mapped_column(String(64), default=None)
    out_dir: Mapped[str] = mapped_column(Text)
    plan_json: Mapped[str | None] = mapped_column(Text, default=None)  # the summary.json plan block
    checks_json: Mapped[str | None] = mapped_column(Text, default=None)
    gc_json: Mapped[str | None] = mapped_column(Text, default=None)  # the summary.json gc block
    # per namespace: tags, expired, unregenerable, expected_bytes (records JSON)
    namespaces_json: Mapped[str | None] = mapped_column(Text, default=None)
    charts: Mapped[int] = mapped_column(Integer, default=0)  # chart repositories: never reclaimed
    gc_started_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)  # cloud clock
    gc_finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)  # cloud clock
    window_end: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)  # cloud clock
    price_per_gb_month: Mapped[float] = mapped_column(default=0.0)
    currency: Mapped[str] = mapped_column(String(8), default="CNY")
    savings_recorded: Mapped[bool] = mapped_column(Boolean, default=False)


class Freeze(Base):
    """One Deny statement merged into a bucket policy, and how to undo it."""

    __tablename__ = "freezes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.run_id"), index=True)
    bucket: Mapped[str] = mapped_column(String(128), index=True)
    sid: Mapped[str] = mapped_column(String(128))
    had_policy: Mapped[bool] = mapped_column(Boolean)
    original_policy: Mapped[str | None] = mapped_column(Text, default=None)  # JSON text as read
    # intent (recorded, maybe applied) → applied → restored | restored_partial
    status: Mapped[str] = mapped_column(String(24), default="intent")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    restored_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)
    note: Mapped[str | None] = mapped_column(Text, default=None)


class GcTask(Base):
    __tablename__ = "gc_tasks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.run_id"), index=True)
    instance_id: Mapped[str] = mapped_column(String(128), index=True)
    driver: Mapped[str] = mapped_column(String(16))
    # written with the intent, handed to the driver's start: names the task this row started
    client_token: Mapped[str | None] = mapped_column(String(64), default=None)
    task_id: Mapped[str | None] = mapped_column(String(128), default=None)
    # intent (recorded before start) → then the driver's state
    state: Mapped[str] = mapped_column(String(16), default="intent")
    tags_deleted: Mapped[int] = mapped_column(Integer, default=0)
    objects_deleted: Mapped[int] = mapped_column(Integer, default=0)
    bytes_deleted: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)


class Sample(Base):
    __tablename__ = "samples"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.run_id"), index=True)
    bucket: Mapped[str] = mapped_column(String(128))
    taken_at: Mapped[datetime] = mapped_column(UtcDateTime)  # when the figures hold: GetBucketStat LastModifiedTime
    storage_bytes: Mapped[int] = mapped_column(BigInteger)
    object_count: Mapped[int] = mapped_column(BigInteger)
    phase: Mapped[str] = mapped_column(String(8))  # before | after | stale (went back in time: out of the series)


class RunPlan(Base):
    """The tags a run saw and which it planned to delete, kept so that a run killed after
    GC started can be finished against *its* plan: re-planning then would see the
    deleted tags gone and judge the deletions against the wrong list."""

    __tablename__ = "run_plans"

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.run_id"), primary_key=True)
    # gzip of the JSON table (orient "split"): namespace, repo, repo_id, tag, digest, expired
    tags_json_gz: Mapped[bytes] = mapped_column(LargeBinary)


class RunRules(Base):
    """The lifecycle rules as a run planned them (``rules.rule_table``, JSON records), for its
    report: rules that delete tags by themselves are named there. A table of its own, not a
    column of ``runs``: ``create_all`` adds missing tables to an existing ledger, not columns."""

    __tablename__ = "run_rules"

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.run_id"), primary_key=True)
    rules_json: Mapped[str] = mapped_column(Text)


class InstanceLock(Base):
    """Who is reclaiming an instance right now: one row per instance, the primary key
    makes a second holder impossible. A holder that stops heart-beating, or whose process
    is gone from this host, is dead and may be taken over (``acr_gc.ledger.instance_lock``)."""

    __tablename__ = "instance_locks"

    instance_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    token: Mapped[str] = mapped_column(String(64))  # one per acquisition: compare-and-swap key
    run_id: Mapped[str] = mapped_column(String(64))
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    acquired_at: Mapped[datetime] = mapped_column(UtcDateTime)
    heartbeat_at: Mapped[datetime] = mapped_column(UtcDateTime)


class ManifestCache(Base):
    """Manifests read through the registry API, by digest. A digest names immutable content,
    so a row never changes and serves every later run (and every instance): a monthly
    forecast fetches only the manifests it has never seen."""

    __tablename__ = "manifest_cache"

    digest: Mapped[str] = mapped_column(String(200), primary_key=True)
    media_type: Mapped[str] = mapped_column(String(200))
    size: Mapped[int] = mapped_column(BigInteger)
    # JSON: {"blobs": [[digest, size], …] (config first), "children": [digest, …]}
    refs_json: Mapped[str] = mapped_column(Text)


class Approval(Base):
    """A person's answer to a run's plan (``approval.required``), kept with the run: who
    answered, yes or no, and why. A table of its own, so ledgers made before it gain it
    by ``create_all`` without altering ``runs``."""

    __tablename__ = "approvals"

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.run_id"), primary_key=True)
    asked_at: Mapped[datetime] = mapped_column(UtcDateTime)
    answered_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)
    approved: Mapped[bool] = mapped_column(Boolean, default=False)
    answered_by: Mapped[str | None] = mapped_column(String(255), default=None)
    reason: Mapped[str | None] = mapped_column(Text, default=None)
    # prefect (the paused run's form) | terminal (the CLI's y/N) | --approve | timeout | no-terminal
    via: Mapped[str] = mapped_column(String(16))
