"""The emulator's dataset format (DESIGN section 10), validated with pydantic.

A dataset is the whole initial state of the emulated cloud: credentials, layer sizes,
registry instances and their OSS buckets. Unknown keys are refused so that a typo in a
hand-written test dataset fails loudly instead of silently meaning "default".
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


class Credential(_Strict):
    access_key_id: str
    access_key_secret: str
    principal: str


class SourceCode(_Strict):
    type: str
    namespace: str
    name: str


class BuildRule(_Strict):
    push_type: str
    push_name: str
    image_tag: str


class SyncRule(_Strict):
    target_instance_id: str
    target_namespace: str
    target_repo: str


class Tag(_Strict):
    tag: str
    digest: str
    updated: datetime
    layers: list[str] = Field(default_factory=list)

    _utc = field_validator("updated")(_utc)


class Repository(_Strict):
    namespace: str
    name: str
    source_code: SourceCode | None = None
    build_rules: list[BuildRule] = Field(default_factory=list)
    sync_rules: list[SyncRule] = Field(default_factory=list)
    tags: list[Tag] = Field(default_factory=list)


class ChartVersion(_Strict):
    version: str
    size: int = Field(ge=0)


class Chart(_Strict):
    namespace: str
    name: str
    versions: list[ChartVersion] = Field(default_factory=list)


class LifecycleRule(_Strict):
    scope: Literal["INSTANCE", "NAMESPACE", "REPO"]
    namespace: str | None = None
    repo: str | None = None
    retention_tag_count: int | None = Field(default=None, ge=0)
    tag_regexp: str | None = None
    enable_delete_tag: bool = True


class Instance(_Strict):
    instance_id: str
    name: str
    region: str = "cn-hangzhou"
    gc_whitelisted: bool = False
    bucket: str
    namespaces: list[str] = Field(default_factory=list)
    repositories: list[Repository] = Field(default_factory=list)
    charts: list[Chart] = Field(default_factory=list)
    lifecycle_rules: list[LifecycleRule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _repos_in_known_namespaces(self) -> "Instance":
        known = set(self.namespaces)
        for repo in self.repositories:
            if repo.namespace not in known:
                raise ValueError(f"repository {repo.namespace}/{repo.name} names unknown namespace {repo.namespace!r}")
        for chart in self.charts:
            if chart.namespace not in known:
                raise ValueError(f"chart {chart.namespace}/{chart.name} names unknown namespace {chart.namespace!r}")
        return self


class BucketLifecycleRule(_Strict):
    id: str
    prefix: str = ""
    expiration_days: int | None = Field(default=None, ge=1)
    noncurrent_days: int | None = Field(default=None, ge=1)


class ExtraObject(_Strict):
    key: str
    size: int = Field(ge=0)


class Bucket(_Strict):
    name: str
    versioning: Literal["Enabled", "Suspended"] | None = None
    lifecycle: list[BucketLifecycleRule] = Field(default_factory=list)
    policy: dict | None = None
    extra_objects: list[ExtraObject] = Field(default_factory=list)


class Dataset(_Strict):
    clock: datetime
    credentials: list[Credential] = Field(min_length=1)
    layers: dict[str, int] = Field(default_factory=dict)
    instances: list[Instance] = Field(default_factory=list)
    buckets: list[Bucket] = Field(default_factory=list)

    _utc = field_validator("clock")(_utc)

    @model_validator(mode="after")
    def _references_resolve(self) -> "Dataset":
        bucket_names = {b.name for b in self.buckets}
        for inst in self.instances:
            if inst.bucket not in bucket_names:
                raise ValueError(f"instance {inst.instance_id} names unknown bucket {inst.bucket!r}")
            for repo in inst.repositories:
                for tag in repo.tags:
                    missing = [layer for layer in tag.layers if layer not in self.layers]
                    if missing:
                        raise ValueError(
                            f"tag {repo.namespace}/{repo.name}:{tag.tag} names unknown layer {missing[0]!r}"
                        )
        return self


def load_dataset(path: str | Path) -> Dataset:
    """Read and validate a dataset file; raises ``ValueError`` naming the file on any problem."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read dataset {path}: {exc}") from exc
    return Dataset.model_validate(raw)


BUNDLED_DEMO = Path(__file__).parent / "data" / "demo.json"
