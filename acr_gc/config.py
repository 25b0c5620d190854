"""The run configuration (DESIGN section 10): YAML on disk, flow parameters in Prefect.

The same pydantic models are the flow's parameters, so the Prefect UI renders them as a
form. Unknown keys are an error; durations are ISO-8601 (``PT30S``, ``P1D``) or seconds.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, WithJsonSchema, field_validator


def _duration(value: object) -> object:
    """Accept seconds as a number; pydantic parses ISO-8601 strings itself."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return timedelta(seconds=value)
    return value


# The JSON schema (the Prefect UI form, deployment parameter validation) admits both
# spellings that the validator accepts, not only pydantic's ISO-8601 string.
Duration = Annotated[
    timedelta,
    BeforeValidator(_duration),
    WithJsonSchema({"anyOf": [{"type": "string", "format": "duration"}, {"type": "number", "minimum": 0}]}),
]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Target(_Section):
    region: str = "cn-hangzhou"
    instance_id: str = Field(min_length=1)
    bucket: str = Field(min_length=1)
    acr_endpoint: str | None = None  # None: the region's public endpoint
    oss_endpoint: str | None = None
    credentials: str = "chain"  # chain | block:<name>

    @field_validator("credentials")
    @classmethod
    def _credentials_source(cls, value: str) -> str:
        if value != "chain" and not (value.startswith("block:") and len(value) > len("block:")):
            raise ValueError("must be 'chain' or 'block:<name>'")
        return value

    @property
    def resolved_acr_endpoint(self) -> str:
        return self.acr_endpoint or f"cr.{self.region}.aliyuncs.com"

    @property
    def resolved_oss_endpoint(self) -> str:
        return self.oss_endpoint or f"oss-{self.region}.aliyuncs.com"


class Policy(_Section):
    allow_unregenerable: list[str] = Field(default_factory=list)  # "namespace/repo:tag-glob"
    regeneration_manifest: Path | None = None
    accept_never_released: bool = False


class Freeze(_Section):
    principals: list[str] = Field(default_factory=lambda: ["*"], min_length=1)
    hold_until: Literal["gc_complete", "window_end"] = "gc_complete"


class Gc(_Section):
    driver: Literal["emulator", "console"] = "emulator"
    timeout: Duration = timedelta(hours=6)
    poll_interval: Duration = timedelta(seconds=30)
    on_timeout: Literal["cancel", "leave"] = "cancel"


class Sampling(_Section):
    mode: Literal["inline", "scheduled"] = "scheduled"
    interval: Duration = timedelta(days=1)
    day_length: Duration = timedelta(days=1)
    margin_days: int = Field(default=2, ge=0)
    window_days: int | None = Field(default=None, ge=0)


class Report(_Section):
    out_dir: Path = Path("reports/out")
    price_per_gb_month: float = Field(default=0.12, ge=0)
    currency: str = "CNY"


class Ledger(_Section):
    url: str = "sqlite:///.acr-gc/ledger.db"


class Api(_Section):
    qps: float = Field(default=50, gt=0)
    concurrency: int = Field(default=16, ge=1)
    retries: int = Field(default=6, ge=0)
    timeout_s: float = Field(default=30, gt=0)


class Config(_Section):
    target: Target
    policy: Policy = Field(default_factory=Policy)
    freeze: Freeze = Field(default_factory=Freeze)
    gc: Gc = Field(default_factory=Gc)
    sampling: Sampling = Field(default_factory=Sampling)
    report: Report = Field(default_factory=Report)
    ledger: Ledger = Field(default_factory=Ledger)
    api: Api = Field(default_factory=Api)


class ConfigError(ValueError):
    """Bad configuration input; the message is one line an operator can act on."""


def load_config(path: str | Path) -> Config:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config {path} is not UTF-8 text") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"config {path} is not valid YAML{where}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"config {path} must be a mapping with at least a 'target' section")
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        msg = "unknown key" if first["type"] == "extra_forbidden" else first["msg"]
        more = f" (and {exc.error_count() - 1} more problem(s))" if exc.error_count() > 1 else ""
        raise ConfigError(f"config {path}: {where}: {msg}{more}") from None
