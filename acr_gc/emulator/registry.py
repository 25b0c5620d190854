"""Backend state of the emulated ACR EE: instances, namespaces, repositories, tags, charts.

The registry keeps its content as objects in the instance's OSS bucket (the layout the
real service uses under ``docker/registry/v2/``), so that bucket storage is the ground
truth for what GC reclaims:

* layer blob      ``docker/registry/v2/blobs/sha256/<hex[:2]>/<hex>/data``  (size from ``layers``)
* manifest blob   same blob path for the manifest digest: the manifest document the
                  registry API serves (``manifest_body``), padded with spaces to at least
                  ``MANIFEST_BYTES`` bytes
* tag link        ``docker/registry/v2/repositories/<ns>/<repo>/_manifests/tags/<tag>/current/link``
                  holding the digest string (size ``len(digest)``)
* chart version   ``helm/<ns>/<name>/<name>-<version>.tgz`` (never touched by GC)

Blobs and manifests are stored once per bucket, whichever repositories share them.
Nothing here parses requests: ``acr_wire`` answers the API from these objects, ``gc``
mutates them. Tags are indexed per repository and their newest-first order is cached, so
paging through a repository costs O(page), not O(all tags).
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from typing import Iterable

from acr_gc.emulator import dataset as ds
from acr_gc.emulator.storage import Bucket, Storage

MANIFEST_BYTES = 1024
"""Stored size of a manifest blob (one per distinct manifest digest) whose document is shorter;
a longer document (many layers, a big index) is stored at its own length."""

BLOBS_PREFIX = "docker/registry/v2/blobs/"

# Media types the registry API serves (the OCI image spec and Docker's image manifest v2 schema 2)
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
EMPTY_DIGEST = "sha256:" + hashlib.sha256(b"").hexdigest()


def blob_key(digest: str) -> str:
    """Object key of a blob (layer or manifest) by its ``sha256:<hex>`` digest."""
    algo, _, hexpart = digest.partition(":")
    if not hexpart:
        algo, hexpart = "sha256", digest
    return f"docker/registry/v2/blobs/{algo}/{hexpart[:2]}/{hexpart}/data"


def link_key(namespace: str, repo: str, tag: str) -> str:
    return f"docker/registry/v2/repositories/{namespace}/{repo}/_manifests/tags/{tag}/current/link"


def chart_key(namespace: str, name: str, version: str) -> str:
    return f"helm/{namespace}/{name}/{name}-{version}.tgz"


def stable_id(prefix: str, *parts: str, length: int = 16) -> str:
    """A deterministic id (``crr-…``) so that restarts and re-loads keep ids stable."""
    return prefix + hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:length]


def epoch_ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


class NotFound(LookupError):
    """An instance, repository, tag or rule the caller named does not exist."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


class PolicyDenied(PermissionError):
    """The bucket policy refuses the registry's own role an action (as real OSS would)."""

    def __init__(self, principal: str, action: str, bucket: str, key: str):
        super().__init__(f"AccessDenied: the policy of bucket {bucket} denies {action} on {key} "
                         f"to the registry's role {principal}")
        self.action = action


def _may_delete(bucket: Bucket, key: str) -> None:
    """The registry deletes as its RAM role, which the bucket policy binds like anyone."""
    principal = bucket.registry_principal
    if bucket.denies(principal, "oss:DeleteObject", key):
        raise PolicyDenied(principal, "oss:DeleteObject", bucket.name, key)


class TagRecord:
    __slots__ = ("tag", "digest", "updated_ms", "layers", "size")

    def __init__(self, tag: str, digest: str, updated_ms: int, layers: tuple[str, ...], size: int):
        self.tag = tag
        self.digest = digest
        self.updated_ms = updated_ms
        self.layers = layers
        self.size = size

    def to_dump(self) -> list:
        return [self.tag, self.digest, self.updated_ms, list(self.layers), self.size]

    @classmethod
    def from_dump(cls, doc: list) -> "TagRecord":
        tag, digest, updated_ms, layers, size = doc
        return cls(str(tag), str(digest), int(updated_ms), tuple(map(str, layers)), int(size))

    @property
    def image_id(self) -> str:
        # the image id is the config digest in real ACR; a stable stand-in derived from the digest
        return hashlib.sha256(self.digest.encode()).hexdigest()


class RepoRecord:
    """One image repository; ``ordered()`` is the cached newest-first tag order (DESIGN 3)."""

    def __init__(self, instance_id: str, spec: ds.Repository, created_ms: int):
        self.instance_id = instance_id
        self.namespace = spec.namespace
        self.name = spec.name
        self.repo_id = stable_id("crr-", instance_id, spec.namespace, spec.name)
        self.created_ms = created_ms
        self.source_code = spec.source_code
        self.build_rules = list(spec.build_rules)
        self.sync_rules = list(spec.sync_rules)
        self.tags: dict[str, TagRecord] = {}
        self._ordered: list[TagRecord] | None = None

    @property
    def full_name(self) -> str:
        return f"{self.namespace}/{self.name}"

    def add(self, record: TagRecord) -> None:
        self.tags[record.tag] = record
        self._ordered = None

    def remove(self, tag: str) -> TagRecord | None:
        record = self.tags.pop(tag, None)
        if record is not None and self._ordered is not None:
            self._ordered.remove(record)
        return record

    def ordered(self) -> list[TagRecord]:
        """Tags by update time newest first, ties by tag name ascending."""
        if self._ordered is None:
            self._ordered = sorted(self.tags.values(), key=lambda t: (-t.updated_ms, t.tag))
        return self._ordered

    @property
    def modified_ms(self) -> int:
        return max((t.updated_ms for t in self.tags.values()), default=self.created_ms)

    def to_dump(self) -> dict:
        return {
            "namespace": self.namespace,
            "name": self.name,
            "created_ms": self.created_ms,
            "source_code": None if self.source_code is None else self.source_code.model_dump(),
            "build_rules": [rule.model_dump() for rule in self.build_rules],
            "sync_rules": [rule.model_dump() for rule in self.sync_rules],
            "tags": [record.to_dump() for record in self.tags.values()],
        }

    @classmethod
    def from_dump(cls, instance_id: str, doc: dict) -> "RepoRecord":
        spec = ds.Repository.model_validate({k: v for k, v in doc.items() if k not in ("created_ms", "tags")})
        repo = cls(instance_id, spec, int(doc["created_ms"]))
        for record in doc["tags"]:
            repo.add(TagRecord.from_dump(record))
        return repo


class ChartRepoRecord:
    def __init__(self, instance_id: str, spec: ds.Chart, created_ms: int):
        self.namespace = spec.namespace
        self.name = spec.name
        self.repo_id = stable_id("crcr-", instance_id, spec.namespace, spec.name)
        self.created_ms = created_ms
        self.versions = list(spec.versions)


class LifecycleRuleRecord:
    def __init__(self, instance_id: str, index: int, spec: ds.LifecycleRule, created_ms: int):
        self.rule_id = stable_id("crlr-", instance_id, str(index))
        self.scope = spec.scope
        self.namespace = spec.namespace
        self.repo = spec.repo
        self.retention_tag_count = spec.retention_tag_count
        self.tag_regexp = spec.tag_regexp
        self.enable_delete_tag = spec.enable_delete_tag
        self.dry_run = spec.dry_run
        self.policies = [policy.to_api() for policy in spec.policies]  # the API's shape
        self.auto = spec.auto
        self.schedule_time = spec.schedule_time
        self.next_time_ms = None if spec.next_time is None else epoch_ms(spec.next_time)
        self.enable_delete_untagged_manifest = spec.enable_delete_untagged_manifest
        self.spec = spec
        self.created_ms = created_ms


class InstanceRecord:
    def __init__(self, spec: ds.Instance, created_ms: int):
        self.instance_id = spec.instance_id
        self.name = spec.name
        self.region = spec.region
        self.gc_whitelisted = spec.gc_whitelisted
        self.bucket_name = spec.bucket
        self.created_ms = created_ms
        self.namespaces: list[str] = list(dict.fromkeys(spec.namespaces))
        self.namespace_ids = {ns: stable_id("crn-", spec.instance_id, ns) for ns in self.namespaces}
        self.repos: list[RepoRecord] = []  # sorted by (namespace, name)
        self.repos_by_id: dict[str, RepoRecord] = {}
        self.repos_by_name: dict[tuple[str, str], RepoRecord] = {}
        self.charts: list[ChartRepoRecord] = [
            ChartRepoRecord(spec.instance_id, c, created_ms)
            for c in sorted(spec.charts, key=lambda c: (c.namespace, c.name))
        ]
        self.chart_namespaces: list[str] = list(dict.fromkeys(c.namespace for c in self.charts))
        self.lifecycle_rules = [
            LifecycleRuleRecord(spec.instance_id, i, r, created_ms) for i, r in enumerate(spec.lifecycle_rules)
        ]
        self.gc_tasks: list = []  # gc.GcTask, oldest first

    def repo(self, repo_id: str) -> RepoRecord:
        try:
            return self.repos_by_id[repo_id]
        except KeyError:
            raise NotFound("REPO_NOT_EXIST", f"The repository {repo_id} does not exist.") from None

    def tag_count(self) -> int:
        return sum(len(r.tags) for r in self.repos)

    def add_repo(self, repo: RepoRecord) -> None:
        """Append a repository (callers add them in (namespace, name) order)."""
        if (repo.namespace, repo.name) in self.repos_by_name:
            raise ValueError(f"instance {self.instance_id}: repository {repo.full_name} given twice")
        self.repos.append(repo)
        self.repos_by_id[repo.repo_id] = repo
        self.repos_by_name[(repo.namespace, repo.name)] = repo

    def to_dump(self) -> dict:
        """Everything but the GC tasks (``gc`` dumps those); charts and rules in their dataset form,
        from which their records and ids are derived again."""
        return {
            "instance_id": self.instance_id,
            "name": self.name,
            "region": self.region,
            "gc_whitelisted": self.gc_whitelisted,
            "bucket": self.bucket_name,
            "created_ms": self.created_ms,
            "namespaces": list(self.namespaces),
            "charts": [
                {"namespace": c.namespace, "name": c.name, "versions": [v.model_dump() for v in c.versions]}
                for c in self.charts
            ],
            "lifecycle_rules": [
                dict(r.spec.model_dump(mode="json"),
                     next_time=None if r.next_time_ms is None else
                     datetime.fromtimestamp(r.next_time_ms / 1000, timezone.utc).isoformat())
                for r in self.lifecycle_rules
            ],  # fmt: skip
            "repos": [repo.to_dump() for repo in self.repos],
        }

    @classmethod
    def from_dump(cls, doc: dict) -> "InstanceRecord":
        spec = ds.Instance.model_validate({k: v for k, v in doc.items() if k not in ("created_ms", "repos")})
        inst = cls(spec, int(doc["created_ms"]))
        for repo in doc["repos"]:
            inst.add_repo(RepoRecord.from_dump(inst.instance_id, repo))
        return inst


class Registry:
    """All instances, plus the manifest → layers index shared by the instances of a bucket."""

    def __init__(self, storage: Storage, layer_sizes: dict[str, int]):
        self.storage = storage
        self.layer_sizes = dict(layer_sizes)
        self.instances: dict[str, InstanceRecord] = {}
        # per bucket: manifest digest -> its blobs, config first (first definition wins);
        # an index has no blobs of its own
        self.manifests: dict[str, dict[str, tuple[str, ...]]] = {}
        # per bucket: index digest -> its children as (manifest digest, platform)
        self.indexes: dict[str, dict[str, tuple[tuple[str, str], ...]]] = {}
        # per bucket: digests of the image manifests inside an index (served as OCI manifests)
        self.oci_manifests: dict[str, set[str]] = {}

    @classmethod
    def from_dataset(cls, dataset: ds.Dataset, storage: Storage, now: datetime) -> "Registry":
        reg = cls(storage, dataset.layers)
        created_ms = epoch_ms(now)
        for spec in dataset.instances:
            inst = InstanceRecord(spec, created_ms)
            bucket = storage.bucket(spec.bucket)
            manifests = reg.manifests.setdefault(spec.bucket, {})
            for rspec in sorted(spec.repositories, key=lambda r: (r.namespace, r.name)):
                repo = RepoRecord(spec.instance_id, rspec, created_ms)
                inst.add_repo(repo)
                for tspec in rspec.tags:
                    layers = tuple(tspec.layers)
                    if tspec.children:
                        reg._add_index(bucket, tspec, now)
                        blobs = dict.fromkeys(
                            b for child, _ in reg.indexes[spec.bucket][tspec.digest] for b in manifests.get(child, ())
                        )
                        size = sum(reg.layer_sizes.get(b, 0) for b in blobs)
                    else:
                        if tspec.digest not in manifests:
                            manifests[tspec.digest] = layers
                            reg._store_manifest(bucket, tspec.digest, now)
                        size = sum(reg.layer_sizes[layer] for layer in layers)
                    repo.add(TagRecord(tspec.tag, tspec.digest, epoch_ms(tspec.updated), layers, size))
                    bucket.put_object(
                        link_key(repo.namespace, repo.name, tspec.tag), now, data=tspec.digest.encode()
                    )
                for untagged in rspec.untagged:
                    if untagged.digest not in manifests:
                        manifests[untagged.digest] = tuple(untagged.layers)
                        reg._store_manifest(bucket, untagged.digest, now)
            for chart in inst.charts:
                for version in chart.versions:
                    bucket.put_object(chart_key(chart.namespace, chart.name, version.version), now, size=version.size)
            reg.instances[inst.instance_id] = inst
        return reg

    def to_dump(self) -> dict:
        return {
            "layer_sizes": dict(self.layer_sizes),
            "manifests": {b: {d: list(layers) for d, layers in m.items()} for b, m in self.manifests.items()},
            "indexes": {b: {d: [list(c) for c in children] for d, children in m.items()}
                        for b, m in self.indexes.items()},
            "oci_manifests": {b: sorted(m) for b, m in self.oci_manifests.items()},
            "instances": [inst.to_dump() for inst in self.instances.values()],
        }

    @classmethod
    def from_dump(cls, doc: dict, storage: Storage) -> "Registry":
        reg = cls(storage, {str(k): int(v) for k, v in doc["layer_sizes"].items()})
        reg.manifests = {
            str(b): {str(d): tuple(map(str, layers)) for d, layers in m.items()} for b, m in doc["manifests"].items()
        }
        reg.indexes = {
            str(b): {str(d): tuple((str(c), str(p)) for c, p in children) for d, children in m.items()}
            for b, m in doc.get("indexes", {}).items()
        }
        reg.oci_manifests = {str(b): set(map(str, m)) for b, m in doc.get("oci_manifests", {}).items()}
        for inst in map(InstanceRecord.from_dump, doc["instances"]):
            storage.bucket(inst.bucket_name)  # the bucket must exist
            reg.instances[inst.instance_id] = inst
        return reg

    def _store_manifest(self, bucket: Bucket, digest: str, now: datetime) -> None:
        """Store a manifest's document and the blobs it references (its digest already in ``manifests``)."""
        body, _ = self.manifest_body(bucket.name, digest)
        bucket.put_object(blob_key(digest), now, size=len(body))
        for layer in self.manifests[bucket.name][digest]:
            key = blob_key(layer)
            if bucket.current(key) is None:
                bucket.put_object(key, now, size=self.layer_sizes[layer])

    def _add_index(self, bucket: Bucket, tspec: ds.Tag, now: datetime) -> None:
        """A multi-arch index and its per-platform manifests (first definition of each digest wins)."""
        manifests = self.manifests.setdefault(bucket.name, {})
        indexes = self.indexes.setdefault(bucket.name, {})
        if tspec.digest in manifests:
            return
        for child in tspec.children:
            if child.digest not in manifests:
                manifests[child.digest] = tuple(child.layers)
                self.oci_manifests.setdefault(bucket.name, set()).add(child.digest)
                self._store_manifest(bucket, child.digest, now)
        indexes[tspec.digest] = tuple((child.digest, child.platform) for child in tspec.children)
        manifests[tspec.digest] = ()
        self._store_manifest(bucket, tspec.digest, now)

    def manifest_body(self, bucket_name: str, digest: str) -> tuple[bytes, str]:
        """The document the registry API serves for a manifest, and its media type.

        Deterministic from the dataset, so the stored object's size always equals the served
        length: descriptor sizes are the blob objects' sizes (the first blob is the config;
        none: the empty blob). Digests are the dataset's names for its manifests, not hashes
        of these bytes (a dataset cannot know them in advance).
        """
        children = self.indexes.get(bucket_name, {}).get(digest)
        if children is not None:
            media_type = OCI_INDEX
            entries = []
            for child, platform in children:
                os_name, _, arch = platform.partition("/")
                entries.append({"mediaType": OCI_MANIFEST, "digest": child,
                                "size": len(self.manifest_body(bucket_name, child)[0]),
                                "platform": {"architecture": arch or "amd64", "os": os_name}})
            doc = {"schemaVersion": 2, "mediaType": media_type, "manifests": entries}
        else:
            blobs = self.manifests[bucket_name][digest]
            oci = digest in self.oci_manifests.get(bucket_name, ())
            media_type, config_type, layer_type = (
                (OCI_MANIFEST, OCI_CONFIG, OCI_LAYER) if oci else (DOCKER_MANIFEST, DOCKER_CONFIG, DOCKER_LAYER)
            )
            config = (
                {"mediaType": config_type, "digest": blobs[0], "size": self.layer_sizes[blobs[0]]}
                if blobs else {"mediaType": config_type, "digest": EMPTY_DIGEST, "size": 0}
            )
            doc = {"schemaVersion": 2, "mediaType": media_type, "config": config,
                   "layers": [{"mediaType": layer_type, "digest": b, "size": self.layer_sizes[b]} for b in blobs[1:]]}
        body = json.dumps(doc, separators=(",", ":")).encode()
        return body.ljust(MANIFEST_BYTES, b" "), media_type

    def live_manifests(self, bucket_name: str, roots: Iterable[str]) -> set[str]:
        """``roots`` and the child manifests of the indexes among them."""
        indexes = self.indexes.get(bucket_name, {})
        live = set(roots)
        for digest in list(live):
            live.update(child for child, _ in indexes.get(digest, ()))
        return live

    # ---- lookups --------------------------------------------------------------------

    def instance(self, instance_id: str) -> InstanceRecord:
        try:
            return self.instances[instance_id]
        except KeyError:
            raise NotFound("INSTANCE_NOT_EXIST", f"The instance {instance_id} does not exist.") from None

    def bucket_of(self, inst: InstanceRecord) -> Bucket:
        return self.storage.bucket(inst.bucket_name)

    # ---- mutations ------------------------------------------------------------------

    def delete_tag(self, inst: InstanceRecord, repo: RepoRecord, tag: str, now: datetime) -> tuple[int, int]:
        """Remove a tag and its link object (never the manifest or blobs: that is GC's sweep).

        Returns (objects deleted, bytes deleted) in the bucket. Raises ``PolicyDenied``
        (nothing changed) when the bucket policy refuses the registry the delete.
        """
        if tag in repo.tags:
            _may_delete(self.bucket_of(inst), link_key(repo.namespace, repo.name, tag))
        record = repo.remove(tag)
        if record is None:
            raise NotFound("TAG_NOT_EXIST", f"The tag {repo.full_name}:{tag} does not exist.")
        bucket = self.bucket_of(inst)
        key = link_key(repo.namespace, repo.name, tag)
        current = bucket.current(key)
        if current is None:
            return 0, 0
        bucket.delete_object(key, now)
        return 1, current.size

    def sweep(self, bucket_name: str, now: datetime) -> tuple[list[str], int]:
        """Delete manifests no surviving tag references, then blobs no surviving manifest references.

        Considers every instance stored in the bucket. Returns (deleted keys, bytes deleted).
        Raises ``PolicyDenied`` at the first delete the bucket policy refuses the registry.
        """
        bucket = self.storage.bucket(bucket_name)
        manifests = self.manifests.get(bucket_name, {})
        tagged: set[str] = set()
        for inst in self.instances.values():
            if inst.bucket_name != bucket_name:
                continue
            for repo in inst.repos:
                for record in repo.tags.values():
                    tagged.add(record.digest)
        live_manifests = self.live_manifests(bucket_name, tagged)
        live_blobs: set[str] = set()
        for digest in live_manifests:
            live_blobs.update(manifests.get(digest, ()))
        # a key stays when any surviving use (as manifest or as layer) still maps to it
        live_keys = {blob_key(d) for d in live_manifests} | {blob_key(d) for d in live_blobs}
        deleted: list[str] = []
        freed = 0
        for digest, layers in manifests.items():
            if digest in live_manifests:
                continue
            for key in [blob_key(digest)] + [blob_key(layer) for layer in layers]:
                if key in live_keys:
                    continue
                current = bucket.current(key)
                if current is None:
                    continue
                _may_delete(bucket, key)
                bucket.delete_object(key, now)
                deleted.append(key)
                freed += current.size
        # blobs in the registry's layout that no manifest knows (an upload never committed, a
        # manifest removed by hand): a mark-and-sweep frees them too
        for key in bucket.current_keys(BLOBS_PREFIX):
            if key in live_keys or not key.endswith("/data"):
                continue
            current = bucket.current(key)
            bucket.delete_object(key, now)
            deleted.append(key)
            freed += current.size
        return deleted, freed
