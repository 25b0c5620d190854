"""The dataset the cloud-adapter tests load into the emulator, and its independent expectations.

Repository sizes straddle the page boundaries (0, 1, P, P+1 tags for P = 100, the API
maximum, and for a small P = 7 the tests pass explicitly), so paging is checked at every
edge against numbers computed here, not read back from the emulator.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone

AK_ID = "LTAI5tCloudAdapterTest"
AK_SECRET = "cloud-adapter-secret-Zq8vX2pL9wE4"
INSTANCE = "cri-cloudtest"
OTHER_INSTANCE = "cri-replica"
BUCKET = "cri-cloudtest-storage"
OTHER_BUCKET = "cri-replica-storage"
CLOCK = datetime(2024, 6, 1, 0, 0, tzinfo=timezone.utc)
SMALL_PAGE = 7

# namespace/name -> number of tags
REPO_SIZES = {
    "app/empty": 0,
    "app/one": 1,
    "app/seven": SMALL_PAGE,
    "app/eight": SMALL_PAGE + 1,
    "app/hundred": 100,
    "app/hundred-one": 101,
    "lib/base": 3,
}
EXTRA_REPOS = [f"bulk/r{i:03d}" for i in range(101)]  # 101 more repositories: ListRepository paging


def layer(name: str) -> str:
    return "sha256:" + hashlib.sha256(name.encode()).hexdigest()


def digest(name: str) -> str:
    return "sha256:" + hashlib.sha256(("manifest:" + name).encode()).hexdigest()


def tag_updated(i: int) -> datetime:
    return CLOCK - timedelta(days=400) + timedelta(hours=i)


def build() -> dict:
    layers: dict[str, int] = {}
    repos = []
    sizes = dict(REPO_SIZES)
    sizes.update({r: 1 for r in EXTRA_REPOS})
    for full, count in sizes.items():
        ns, name = full.split("/")
        tags = []
        for i in range(count):
            shared = layer("shared-base")
            own = layer(f"{full}:{i}")
            layers[shared] = 1000
            layers[own] = 10 + i
            tags.append({"tag": f"v{i}", "digest": digest(f"{full}:{i}"), "updated": tag_updated(i).isoformat(),
                         "layers": [shared, own]})
        repo = {"namespace": ns, "name": name, "tags": tags}
        if full == "lib/base":
            repo["source_code"] = {"type": "GITHUB", "namespace": "acme", "name": "base"}
            repo["build_rules"] = [{"push_type": "GIT_BRANCH", "push_name": "main", "image_tag": "v*"}]
            repo["sync_rules"] = [{"target_instance_id": OTHER_INSTANCE, "target_namespace": "lib",
                                   "target_repo": "base"}]
        repos.append(repo)
    return {
        "clock": CLOCK.isoformat(),
        "credentials": [{"access_key_id": AK_ID, "access_key_secret": AK_SECRET, "principal": "acs:ram::1:user/gc"}],
        "layers": layers,
        "instances": [
            {
                "instance_id": INSTANCE,
                "name": "cloud-test",
                "region": "cn-hangzhou",
                "gc_whitelisted": True,
                "bucket": BUCKET,
                "namespaces": ["app", "lib", "bulk", "charts"],
                "repositories": repos,
                "charts": [{"namespace": "charts", "name": "web", "versions": [{"version": "1.0.0", "size": 500}]}],
                "lifecycle_rules": [
                    {"scope": "REPO", "namespace": "app", "repo": "hundred", "retention_tag_count": 10,
                     "enable_delete_tag": True},
                    {"scope": "NAMESPACE", "namespace": "lib", "tag_regexp": "v0", "enable_delete_tag": False},
                ],
            },
            {
                "instance_id": OTHER_INSTANCE,
                "name": "replica",
                "region": "cn-shanghai",
                "bucket": OTHER_BUCKET,
                "namespaces": ["lib"],
                "repositories": [],
            },
        ],
        "buckets": [
            {"name": BUCKET, "versioning": "Enabled",
             "lifecycle": [{"id": "noncurrent", "prefix": "docker/", "noncurrent_days": 3}],
             "policy": None, "extra_objects": [{"key": "misc/readme.txt", "size": 42}]},
            {"name": OTHER_BUCKET, "versioning": None, "lifecycle": [], "policy": None, "extra_objects": []},
        ],
    }


def expected_tags(full: str) -> list[tuple[str, str, datetime]]:
    """(tag, digest, updated) of one repository, as the dataset defines them."""
    count = {**REPO_SIZES, **{r: 1 for r in EXTRA_REPOS}}[full]
    return [(f"v{i}", digest(f"{full}:{i}"), tag_updated(i)) for i in range(count)]


def expected_image_size(full: str, i: int) -> int:
    return 1000 + 10 + i
