"""Builders of emulator datasets (DESIGN section 10) shared by the hand-worked tests.

Digests and layers are named (``digest("W1")``, ``layer("base")``) so a dataset reads as
its worked example; every tag holds the shared ``base`` layer and its image's own layer.
Used by tests/pipeline/pipeline_support.py (the run's instance) and the plan tests.
"""

from __future__ import annotations

import hashlib

GITHUB = {"type": "GITHUB", "namespace": "acme", "name": "code"}


def digest(name: str) -> str:
    return "sha256:" + hashlib.sha256(f"image-{name}".encode()).hexdigest()


def layer(name: str) -> str:
    return "sha256:" + hashlib.sha256(f"layer-{name}".encode()).hexdigest()


def tag(name: str, image: str, updated: str) -> dict:
    return {"tag": name, "digest": digest(image), "updated": updated, "layers": [layer("base"), layer(image)]}


def repo(namespace, name, tags, source_code=None, build_rules=(), sync_rules=()):
    return {
        "namespace": namespace,
        "name": name,
        "source_code": source_code,
        "build_rules": [{"push_type": "GIT_BRANCH", "push_name": "main", "image_tag": p} for p in build_rules],
        "sync_rules": list(sync_rules),
        "tags": tags,
    }


def instance(instance_id, bucket, namespaces, repositories, rules, whitelisted=True, charts=()):
    return {
        "instance_id": instance_id,
        "name": instance_id,
        "region": "cn-hangzhou",
        "gc_whitelisted": whitelisted,
        "bucket": bucket,
        "namespaces": namespaces,
        "repositories": repositories,
        "charts": list(charts),
        "lifecycle_rules": rules,
    }


def bucket(name, versioning="Enabled", noncurrent_days=3, policy=None, extra=()):
    lifecycle = [{"id": "nc", "prefix": "docker/", "noncurrent_days": noncurrent_days}] if noncurrent_days else []
    return {"name": name, "versioning": versioning, "lifecycle": lifecycle, "policy": policy,
            "extra_objects": list(extra)}
