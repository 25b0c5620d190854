"""The run configuration (DESIGN section 10): YAML on disk, flow parameters in Prefect.

The same pydantic models are the flow's parameters, so the Prefect UI renders them as a
form. Unknown keys are an error; durations are ISO-8601 (``PT30S``, ``P1D``) or seconds.
Whatever a value is used for later (a folder name, a host to sign requests for, a sleep
between polls, a price in a spreadsheet) is checked here, so that a bad value stops the
run before the first request instead of half way through it.
"""

from __future__ import annotations

import math
import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from acr_gc.input_errors import first_problem

MAX_CONFIG_BYTES = 2**20  # a run configuration is a few kilobytes


def _seconds_or_iso(value: object) -> object:
    """Accept seconds as a number; pydantic parses ISO-8601 strings itself."""
    if isinstance(value, bool):  # YAML's yes/no/true/false are no durations
        raise ValueError("a duration is ISO-8601 (PT30S) or a number of seconds, not true/false")
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise ValueError("a duration must be a finite number of seconds")
        if value < 0:
            raise ValueError("a duration cannot be negative")
        try:
            return timedelta(seconds=value)
        except OverflowError:
            raise ValueError("a duration that long is too long for a clock") from None
    return value


def _positive(value: timedelta) -> timedelta:
    """Zero would poll in a busy loop or end a wait before it starts; a minus sign slips in ISO too."""
    if value <= timedelta(0):
        raise ValueError("a duration must be longer than zero")
    return value


# The JSON schema (the Prefect UI form, deployment parameter validation) admits both
# spellings that the validator accepts, not only pydantic's ISO-8601 string.
Duration = Annotated[
    timedelta,
    BeforeValidator(_seconds_or_iso),
    AfterValidator(_positive),
    WithJsonSchema({"anyOf": [{"type": "string", "format": "duration"}, {"type": "number", "exclusiveMinimum": 0}]}),
]
# Numbers in YAML: true/false and quoted text are slips, not numbers (lax pydantic takes both).
Int = Annotated[int, Strict()]
Number = Annotated[float, Strict()]


def _matching(pattern: str, what: str):
    compiled = re.compile(pattern)

    def check(value: str | None) -> str | None:
        if value is not None and not compiled.fullmatch(value):
            raise ValueError(f"{value!r} is not {what}")
        return value

    return AfterValidator(check)


Region = Annotated[str, _matching(r"[a-z]{2,}(-[a-z0-9]+)+", "a region id such as cn-hangzhou")]
# The instance id names a folder under report.out_dir, so no path separators nor dots.
InstanceId = Annotated[str, _matching(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}", "an instance id such as cri-abc123")]
# OSS bucket names: lowercase letters, digits and '-', neither first nor last, at most 63.
BucketName = Annotated[str, _matching(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", "a valid OSS bucket name")]


def _host_and_port(value: str | None) -> str | None:
    """An SDK endpoint is a host, maybe with a port: a pasted URL would be dialled as a host name."""
    if value is None:
        return value
    try:
        parts = urlsplit(f"//{value}")
        _ = parts.port  # ValueError unless a number in 0..65535
    except ValueError:
        parts = None
    if parts is None or not parts.hostname or parts.path or parts.query or parts.fragment or "@" in value \
            or any(ch.isspace() for ch in value):
        raise ValueError(f"{value!r} is not host or host:port (no scheme, no path), e.g. cr.cn-hangzhou.aliyuncs.com")
    return value


Endpoint = Annotated[str, AfterValidator(_host_and_port)]

# Prefect block document names: lowercase letters, digits and dashes.
CredentialsSource = Annotated[
    str, _matching(r"chain|block:[a-z0-9-]+", "'chain' or 'block:<name>' (a Prefect block name: a-z, 0-9, -)")
]
Currency = Annotated[str, _matching(r"[A-Z]{3}", "an ISO 4217 currency code such as CNY")]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class Target(_Section):
    region: Region = "cn-hangzhou"
    instance_id: InstanceId
    bucket: BucketName
    acr_endpoint: Endpoint | None = None  # None: the region's public endpoint
    oss_endpoint: Endpoint | None = None
    registry_endpoint: Endpoint | None = None  # the registry domain (OCI distribution API); None: no forecast
    credentials: CredentialsSource = "chain"  # chain | block:<name>

    @property
    def resolved_acr_endpoint(self) -> str:
        return self.acr_endpoint or f"cr.{self.region}.aliyuncs.com"

    @property
    def resolved_oss_endpoint(self) -> str:
        return self.oss_endpoint or f"oss-{self.region}.aliyuncs.com"


class PinnedSemantics(_Section):
    """One reading of the lifecycle rules, pinned by an operator who knows it (DESIGN section 3)."""

    combination: Literal["any-retains", "each-rule"]
    count_regexp: Literal["count-or-match", "count-among-matching"]
    regexp_match: Literal["full", "partial"]


def _repo_name(value: str) -> str:
    if value.count("/") != 1 or not all(value.split("/")):
        raise ValueError(f"{value!r} is not namespace/repo")
    return value


class Policy(_Section):
    allow_unregenerable: list[str] = Field(default_factory=list)  # "namespace/repo:tag-glob"
    regeneration_manifest: Path | None = None
    accept_never_released: bool = False
    # conservative: plan every reading (certain ∪ possible is gated); learned: the reading
    # the instance's last GC agreed with alone, else conservative; or one pinned reading.
    semantics: Literal["conservative", "learned"] | PinnedSemantics = "conservative"
    # the blast radius: more than this share of the instance's tags, or every tag of a
    # repository not in allow_emptied, blocks the run (exit 3)
    max_delete_share: Annotated[float, Field(ge=0.0, le=1.0)] = 0.9
    allow_emptied: list[Annotated[str, AfterValidator(_repo_name)]] = Field(default_factory=list)


class Freeze(_Section):
    # No default: only the operator knows who writes to the bucket, and "*" (or the
    # registry's role) would deny GC's own deletes (DESIGN section 5).
    principals: list[str] = Field(min_length=1)
    hold_until: Literal["gc_complete", "window_end"] = "gc_complete"

    @field_validator("principals")
    @classmethod
    def _explicit_principals(cls, value: list[str]) -> list[str]:
        from acr_gc.rules.freeze import FreezeError, validate_principals

        if any(not principal.strip() for principal in value):
            raise ValueError("an empty principal denies nobody: name each RAM user or role")
        try:
            validate_principals(value)
        except FreezeError as exc:
            raise ValueError(str(exc)) from None
        return value


class Gc(_Section):
    driver: Literal["emulator", "console"] = "emulator"
    timeout: Duration = timedelta(hours=6)
    poll_interval: Duration = timedelta(seconds=30)
    on_timeout: Literal["cancel", "leave"] = "cancel"


class Sampling(_Section):
    mode: Literal["inline", "scheduled"] = "scheduled"
    interval: Duration = timedelta(days=1)
    day_length: Duration = timedelta(days=1)
    margin_days: Int = Field(default=2, ge=0)
    window_days: Int | None = Field(default=None, ge=0)
    # cloud time the baseline may wait for GetBucketStat's lagging figures to cover its moment
    stat_wait_max: Duration = timedelta(days=2)


class Report(_Section):
    out_dir: Path = Path("reports/out")
    price_per_gb_month: Number = Field(default=0.12, ge=0)
    currency: Currency = "CNY"

    @field_validator("out_dir", mode="before")
    @classmethod
    def _not_empty(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            raise ValueError("empty: name the folder for the reports")
        return value

    @field_validator("out_dir")
    @classmethod
    def _a_folder_can_be_made(cls, value: Path) -> Path:
        """The report is written last: a file in the way would fail the run after GC."""
        for place in (value, *value.parents):
            if place.exists():
                if not place.is_dir():
                    raise ValueError(f"{place} is a file, not a folder")
                break
        return value


class Ledger(_Section):
    url: str = "sqlite:///.acr-gc/ledger.db"  # in a config file: relative to the file's folder

    @field_validator("url")
    @classmethod
    def _a_database_url(cls, value: str) -> str:
        """A URL the ledger can open (:func:`acr_gc.ledger.urls.check_url`)."""
        from acr_gc.ledger.urls import check_url

        check_url(value)
        return value


class Approval(_Section):
    """A person approves the plan before any change (DESIGN section 2, "approval")."""

    required: bool = False
    timeout: Duration = timedelta(days=2)  # unanswered this long: REJECTED, nothing changed
    # who may answer (as they sign the answer); empty: anyone who can resume the flow run
    approvers: list[str] = Field(default_factory=list)


# A Prefect block: its document name, or <type-slug>/<name> (lowercase letters, digits, dashes).
BlockName = Annotated[str, _matching(r"([a-z0-9-]+/)?[a-z0-9-]+", "a Prefect block name such as custom-webhook/ops")]


class Notify(_Section):
    block: BlockName | None = None  # a Prefect notification block's name (Slack, webhook, email, …)


class Api(_Section):
    qps: Number = Field(default=50, gt=0)
    concurrency: Int = Field(default=16, ge=1)
    retries: Int = Field(default=6, ge=0)
    timeout_s: Number = Field(default=30, gt=0)


class Config(_Section):
    target: Target
    policy: Policy = Field(default_factory=Policy)
    freeze: Freeze
    gc: Gc = Field(default_factory=Gc)
    sampling: Sampling = Field(default_factory=Sampling)
    report: Report = Field(default_factory=Report)
    approval: Approval = Field(default_factory=Approval)
    notify: Notify = Field(default_factory=Notify)
    ledger: Ledger = Field(default_factory=Ledger)
    api: Api = Field(default_factory=Api)

    @model_validator(mode="before")
    @classmethod
    def _empty_sections_mean_defaults(cls, data: object) -> object:
        """``gc:`` with every line under it commented out is YAML null: the section's defaults."""
        if isinstance(data, dict):
            data = {key: value for key, value in data.items() if value is not None or key == "target"}
            data.setdefault("freeze", {})  # so a missing section says "freeze.principals: Field required"
            return data
        return data


class ConfigError(ValueError):
    """Bad configuration input; the message is one line an operator can act on."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML keeps the last of two equal keys silently: a second ``gc:`` section would
    throw the first away. This loader refuses the second instead."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:  # unhashable: SafeLoader explains that itself
                break
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} given twice", key_node.start_mark
                )
        return super().construct_mapping(node, deep)


def load_config(path: str | Path) -> Config:
    path = Path(path)
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_CONFIG_BYTES + 1)  # a bounded read: /dev/zero is a file too
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"config {path} is larger than 1 MiB: not a run configuration")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(f"config {path} is not UTF-8 text (byte {data[exc.start]:#04x} at line {line})") from None
    try:
        raw = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None)
        raise ConfigError(f"config {path} is not valid YAML{where}" + (f": {problem}" if problem else "")) from None
    if not isinstance(raw, dict):
        raise ConfigError(f"config {path} must be a mapping with at least a 'target' section")
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"config {path}: {first_problem(exc, Config)}") from None
    return _ledger_beside(config, path.parent)


def _ledger_beside(config: Config, folder: Path) -> Config:
    """A relative SQLite ledger path is taken relative to the config file's folder, not the
    working directory: ``acr-gc thaw`` run from another folder must find the same ledger."""
    from acr_gc.ledger.urls import beside

    resolved = beside(config.ledger.url, folder)
    if resolved == config.ledger.url:
        return config
    ledger = config.ledger.model_copy(update={"url": resolved})
    return config.model_copy(update={"ledger": ledger})
