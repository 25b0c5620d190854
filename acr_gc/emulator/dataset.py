"""The emulator's dataset format (DESIGN section 10), validated with pydantic.

A dataset is the whole initial state of the emulated cloud: credentials, layer sizes,
registry instances and their OSS buckets. Unknown keys are refused so that a typo in a
hand-written test dataset fails loudly instead of silently meaning "default"; so are
names given twice (the emulator would keep one of them silently, or fail half-loaded)
and negative sizes. Names may otherwise hold any character: the emulator must serve
whatever a registry could answer, hostile names included.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from acr_gc.emulator.policy import parse_policy
from acr_gc.input_errors import first_problem

Name = Annotated[str, Field(min_length=1)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def _first_repeat(names: Iterable[str]) -> str | None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            return name
        seen.add(name)
    return None


class Credential(_Strict):
    access_key_id: Name
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


class ChildManifest(_Strict):
    """One platform's image manifest inside a multi-arch index (its first blob is its config)."""

    digest: Name
    platform: str = "linux/amd64"
    layers: list[str] = Field(default_factory=list)


class Tag(_Strict):
    """A tag and the manifest it points at: an image manifest whose blobs are ``layers`` (the
    first is served as the image config), or a multi-arch index whose ``children`` are the
    per-platform image manifests (``layers`` then stays empty)."""

    tag: Name
    digest: Name
    updated: datetime
    layers: list[str] = Field(default_factory=list)
    children: list[ChildManifest] = Field(default_factory=list)

    _utc = field_validator("updated")(_utc)

    @model_validator(mode="after")
    def _image_or_index(self) -> "Tag":
        if self.children and self.layers:
            raise ValueError(f"tag {self.tag!r}: a multi-arch index has children, not layers")
        return self


class UntaggedManifest(_Strict):
    """A manifest stored in the repository that no tag points at (pushed by digest, or its
    tags deleted earlier)."""

    digest: Name
    layers: list[str] = Field(default_factory=list)


class Repository(_Strict):
    namespace: Name
    name: Name
    source_code: SourceCode | None = None
    build_rules: list[BuildRule] = Field(default_factory=list)
    sync_rules: list[SyncRule] = Field(default_factory=list)
    tags: list[Tag] = Field(default_factory=list)
    untagged: list[UntaggedManifest] = Field(default_factory=list)

    @model_validator(mode="after")
    def _tags_once(self) -> "Repository":
        if (tag := _first_repeat(t.tag for t in self.tags)) is not None:
            raise ValueError(f"tag {tag!r} given twice")
        return self


class ChartVersion(_Strict):
    version: str
    size: int = Field(ge=0)


class Chart(_Strict):
    namespace: str
    name: str
    versions: list[ChartVersion] = Field(default_factory=list)


class PolicyCondition(_Strict):
    """ListArtifactLifecycleRule's ``Policies[].Condition`` (snake case in datasets)."""

    latest_tag_count: int | None = Field(default=None, ge=0)
    last_push_older_than_days: int | None = Field(default=None, ge=0)
    last_pull_older_than_days: int | None = Field(default=None, ge=0)


class PolicyFilter(_Strict):
    tag_wildcard: str | None = None


class LifecyclePolicy(_Strict):
    type: str | None = None
    condition: PolicyCondition | None = None
    filter: PolicyFilter | None = None

    def to_api(self) -> dict:
        """The policy in the API's shape (ListArtifactLifecycleRule ``Policies[]``)."""
        body: dict = {}
        if self.type is not None:
            body["Type"] = self.type
        if self.condition is not None:
            c = self.condition
            body["Condition"] = {k: v for k, v in (("LatestTagCount", c.latest_tag_count),
                                                   ("LastPushOlderThanDays", c.last_push_older_than_days),
                                                   ("LastPullOlderThanDays", c.last_pull_older_than_days))
                                 if v is not None}
        if self.filter is not None and self.filter.tag_wildcard is not None:
            body["Filter"] = {"TagWildcard": self.filter.tag_wildcard}
        return body


class LifecycleRule(_Strict):
    scope: Literal["INSTANCE", "NAMESPACE", "REPO"]
    namespace: str | None = None
    repo: str | None = None
    retention_tag_count: int | None = Field(default=None, ge=0)
    tag_regexp: str | None = None
    enable_delete_tag: bool = True
    dry_run: bool = False
    policies: list[LifecyclePolicy] = Field(default_factory=list)
    auto: bool = False
    schedule_time: str = "MONTH"
    next_time: datetime | None = None
    enable_delete_untagged_manifest: bool = False

    _utc = field_validator("next_time")(lambda v: None if v is None else _utc(v))


class Instance(_Strict):
    instance_id: Name
    name: str
    region: str = "cn-hangzhou"
    gc_whitelisted: bool = False
    bucket: Name
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
        if (name := _first_repeat(f"{r.namespace}/{r.name}" for r in self.repositories)) is not None:
            raise ValueError(f"repository {name} given twice")
        if (name := _first_repeat(f"{c.namespace}/{c.name}" for c in self.charts)) is not None:
            raise ValueError(f"chart {name} given twice")
        return self


class ObjectTag(_Strict):
    key: Name
    value: str = ""


class NotFilter(_Strict):
    """OSS ``Filter/Not``: objects under ``prefix`` (and, when given, carrying every tag
    of ``tags``) are left out of the rule."""

    prefix: str
    tags: list[ObjectTag] = Field(default_factory=list)


class BucketLifecycleRule(_Strict):
    """One OSS lifecycle rule (PutBucketLifecycle's elements, DESIGN section 10).

    ``tags`` limit the rule to objects carrying every one of them; ``not`` leaves objects
    out; the size bounds are strict (OSS's ObjectSizeGreaterThan/LessThan);
    ``created_before_date`` is ``Expiration/CreatedBeforeDate`` (current objects last
    modified before it expire), the alternative to ``expiration_days``."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    id: str
    prefix: str = ""
    status: Literal["Enabled", "Disabled"] = "Enabled"
    expiration_days: int | None = Field(default=None, ge=1)
    created_before_date: datetime | None = None
    noncurrent_days: int | None = Field(default=None, ge=1)
    tags: list[ObjectTag] = Field(default_factory=list)
    not_: NotFilter | None = Field(default=None, alias="not")
    object_size_greater_than: int | None = Field(default=None, ge=0)
    object_size_less_than: int | None = Field(default=None, ge=1)

    _utc = field_validator("created_before_date")(lambda v: None if v is None else _utc(v))

    @model_validator(mode="after")
    def _as_oss_accepts(self) -> "BucketLifecycleRule":
        if self.expiration_days is not None and self.created_before_date is not None:
            raise ValueError(f"lifecycle rule {self.id!r}: expiration_days and created_before_date exclude each other")
        low, high = self.object_size_greater_than, self.object_size_less_than
        if low is not None and high is not None and low >= high:  # OSS error 0014-00000041
            raise ValueError(f"lifecycle rule {self.id!r}: object_size_greater_than must be below object_size_less_than")
        if self.not_ is not None and not self.not_.prefix.startswith(self.prefix):
            raise ValueError(f"lifecycle rule {self.id!r}: not.prefix must lie under the rule's prefix")
        return self


class ExtraObject(_Strict):
    key: str
    size: int = Field(ge=0)
    tags: list[ObjectTag] = Field(default_factory=list)


class Bucket(_Strict):
    name: Name
    owner: str | None = None  # the owning account's UID; None: the account of the first credential
    versioning: Literal["Enabled", "Suspended"] | None = None
    lifecycle: list[BucketLifecycleRule] = Field(default_factory=list)
    policy: dict | None = None
    extra_objects: list[ExtraObject] = Field(default_factory=list)

    @field_validator("policy")
    @classmethod
    def _a_policy_oss_would_store(cls, value: dict | None) -> dict | None:
        """PutBucketPolicy refuses a malformed document, so no real bucket holds one."""
        if value is not None:
            parse_policy(json.dumps(value))
        return value


class Dataset(_Strict):
    clock: datetime
    credentials: list[Credential] = Field(min_length=1)
    layers: dict[str, Annotated[int, Field(ge=0)]] = Field(default_factory=dict)
    instances: list[Instance] = Field(default_factory=list)
    buckets: list[Bucket] = Field(default_factory=list)

    _utc = field_validator("clock")(_utc)

    @model_validator(mode="after")
    def _references_resolve(self) -> "Dataset":
        for what, names in (("access key", (c.access_key_id for c in self.credentials)),
                            ("instance", (i.instance_id for i in self.instances)),
                            ("bucket", (b.name for b in self.buckets))):
            if (name := _first_repeat(names)) is not None:
                raise ValueError(f"{what} {name!r} given twice")
        bucket_names = {b.name for b in self.buckets}
        for inst in self.instances:
            if inst.bucket not in bucket_names:
                raise ValueError(f"instance {inst.instance_id} names unknown bucket {inst.bucket!r}")
            for repo in inst.repositories:
                for tag in repo.tags:
                    blobs = [*tag.layers, *(layer for child in tag.children for layer in child.layers)]
                    missing = [layer for layer in blobs if layer not in self.layers]
                    if missing:
                        raise ValueError(
                            f"tag {repo.namespace}/{repo.name}:{tag.tag} names unknown layer {missing[0]!r}"
                        )
                for manifest in repo.untagged:
                    missing = [layer for layer in manifest.layers if layer not in self.layers]
                    if missing:
                        raise ValueError(
                            f"untagged manifest {repo.namespace}/{repo.name}@{manifest.digest} "
                            f"names unknown layer {missing[0]!r}"
                        )
        return self


class DatasetError(ValueError):
    """The dataset cannot be used; the message is one line naming the file and the field."""


def load_dataset(path: str | Path) -> Dataset:
    """Read and validate a dataset file; raises :class:`DatasetError` on any problem."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise DatasetError(f"{path}: not UTF-8 text (byte {data[exc.start]:#04x} at line {line})") from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path}: not JSON (line {exc.lineno} column {exc.colno}): {exc.msg}") from None
    except RecursionError:
        raise DatasetError(f"{path}: not a dataset: nested too deeply") from None
    try:
        return Dataset.model_validate(raw)
    except ValidationError as exc:
        raise DatasetError(f"{path}: {first_problem(exc)}") from None


BUNDLED_DEMO = Path(__file__).parent / "data" / "demo.json"
