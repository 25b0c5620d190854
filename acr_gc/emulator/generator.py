"""Deterministic emulator datasets (DESIGN sections 9 and 10).

- :func:`generate` makes a dataset of any size for scale runs
  (``acr-gc emulator generate --repos N --tags-per-repo M [--seed S]``).
- :func:`demo_dataset` makes the bundled demo (``data/demo.json``), whose retention rules
  expire a large share of tags that are all regenerable (by alias, replica, build rule or
  the regeneration manifest :func:`demo_regeneration_csv`, ``data/demo-regeneration.csv``),
  so the demo's gate passes.

Everything is derived from a seeded :class:`random.Random` and :mod:`hashlib`; there is
no wall clock and no set iteration, so the same arguments always give the same JSON.

Both kinds of dataset share the same building blocks:

- a catalogue of public base images (alpine, debian, ubuntu, python, node, JRE, CUDA),
  each in an older and a newer version; a repository's builds switch from the older to
  the newer base at a fixed date, so old base layers are freed only when every tag built
  on them expires;
- per build, an optional dependency layer that changes only every few builds, and 1-3
  application layers with a long-tailed (lognormal) size: most 1-50 MB, a few hundreds;
- tag schemes (``profiles``): ``semver`` (``sha-<7hex>`` CI builds, some promoted to
  ``vX.Y.Z``), ``calver`` (``dev-<branch>-<n>`` builds, some promoted to
  ``release-YYYY.MM.DD``), ``nightly`` (``nightly-YYYY.MM.DD``; an unchanged nightly keeps
  the previous digest) and ``branch`` (``sha-<7hex>`` and ``pr-<n>``); all but one-tag
  repositories also carry ``latest`` (the newest release, or the newest build).

Generated datasets (not only the demo) are designed to pass the gate: every repository
that an enabled lifecycle rule applies to either has build rules whose patterns cover all
its tag kinds, or is copied to the replica instance by a sync rule.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import random
import sys
import time
from calendar import timegm
from pathlib import Path

__all__ = [
    "CLOCK",
    "CREDENTIALS",
    "DATA_DIR",
    "DEMO_CONFIG",
    "DEMO_JSON",
    "DEMO_REGENERATION_CSV",
    "demo_dataset",
    "demo_regeneration_csv",
    "demo_regeneration_rows",
    "dump_json",
    "generate",
    "write_demo_files",
]

CLOCK = "2026-11-01T00:00:00Z"
"""The fixed clock of every dataset made here (the emulated 'now' at load time)."""

_CLOCK_TS = timegm((2026, 11, 1, 0, 0, 0, 0, 0, 0))
_DAY = 86_400
_MB = 1_000_000

DATA_DIR = Path(__file__).parent / "data"
DEMO_JSON = DATA_DIR / "demo.json"
DEMO_REGENERATION_CSV = DATA_DIR / "demo-regeneration.csv"
DEMO_CONFIG = DATA_DIR / "demo-config.yaml"

DEMO_SEED = 20261101

CREDENTIALS = [
    {
        "access_key_id": "LTAI5tEmulatorAdmin00001",
        "access_key_secret": "emulator-admin-secret-not-a-real-key",
        "principal": "acs:ram::1234567890:root",
    },
    {
        "access_key_id": "LTAI5tEmulatorCiPusher01",
        "access_key_secret": "emulator-ci-secret-not-a-real-key",
        "principal": "acs:ram::1234567890:user/ci-pusher",
    },
]

SEMVER_OR_LATEST = r"v\d+\.\d+\.\d+|latest"
RELEASE_OR_LATEST = r"release-\d{4}\.\d{2}\.\d{2}|latest"

NONCURRENT_EXPIRY = [{"id": "noncurrent-expiry", "prefix": "docker/", "noncurrent_days": 3}]

# --------------------------------------------------------------------------- base images

_BASE_SIZES = {
    "alpine:3.19": 3_408_729,
    "alpine:3.20": 3_624_160,
    "debian:bookworm-20250407": 28_227_259,
    "debian:bookworm-20250929": 29_754_376,
    "ubuntu:22.04": 29_535_104,
    "ubuntu:24.04": 28_861_712,
    "python:3.11-slim": 48_107_412,
    "python:3.12-slim": 49_912_006,
    "buildpack-deps:bookworm": 299_779_257,  # curl + scm + build tools, flattened here
    "python:3.11": 58_233_115,
    "python:3.12": 62_118_450,
    "node:20-alpine": 42_711_902,
    "node:22-alpine": 47_901_334,
    "node:20": 48_553_021,
    "node:22": 51_230_988,
    "eclipse-temurin:17-jre": 141_120_556,
    "eclipse-temurin:21-jre": 128_930_004,
    "nvidia/cuda:12.2-runtime": 1_612_334_871,
    "nvidia/cuda:12.6-runtime": 1_774_120_443,
}

_BUILDPACK = ["buildpack-deps:bookworm"]

# stack -> (older layers, newer layers, days before the clock when builds switched)
_STACKS: dict[str, tuple[list[str], list[str], int]] = {
    "alpine": (["alpine:3.19"], ["alpine:3.20"], 170),
    "debian": (["debian:bookworm-20250407"], ["debian:bookworm-20250929"], 30),
    "ubuntu": (["ubuntu:22.04"], ["ubuntu:24.04"], 230),
    "python-slim": (
        ["debian:bookworm-20250407", "python:3.11-slim"],
        ["debian:bookworm-20250929", "python:3.12-slim"],
        25,
    ),
    "python": (
        ["debian:bookworm-20250407", *_BUILDPACK, "python:3.11"],
        ["debian:bookworm-20250929", *_BUILDPACK, "python:3.12"],
        20,
    ),
    "node-alpine": (["alpine:3.19", "node:20-alpine"], ["alpine:3.20", "node:22-alpine"], 140),
    "node": (
        ["debian:bookworm-20250407", *_BUILDPACK, "node:20"],
        ["debian:bookworm-20250929", *_BUILDPACK, "node:22"],
        90,
    ),
    "jre": (["ubuntu:22.04", "eclipse-temurin:17-jre"], ["ubuntu:24.04", "eclipse-temurin:21-jre"], 200),
    "cuda": (["ubuntu:22.04", "nvidia/cuda:12.2-runtime"], ["ubuntu:22.04", "nvidia/cuda:12.6-runtime"], 120),
}

_STACK_WEIGHTS = {
    "alpine": 24,
    "debian": 9,
    "ubuntu": 6,
    "python-slim": 16,
    "python": 7,
    "node-alpine": 13,
    "node": 8,
    "jre": 14,
    "cuda": 3,
}

_PROFILE_WEIGHTS = {"semver": 40, "calver": 25, "nightly": 12, "branch": 23}

# tag kind -> (build rule push_type, push_name, image_tag pattern)
_BUILD_RULE_FOR_KIND = {
    "sha": ("GIT_BRANCH", "main", "sha-*"),
    "ver": ("GIT_TAG", "v*", "v*"),
    "dev": ("GIT_BRANCH", "develop", "dev-*"),
    "rel": ("GIT_TAG", "release-*", "release-*"),
    "pr": ("GIT_BRANCH", "pr/*", "pr-*"),
    "nightly": ("GIT_BRANCH", "main", "nightly-*"),
    "latest": ("GIT_BRANCH", "main", "latest"),
}
_KIND_ORDER = ["sha", "ver", "dev", "rel", "pr", "nightly", "latest"]

_BRANCHES = [
    "refunds",
    "sca",
    "ledger-v2",
    "retry-queue",
    "idempotency",
    "fx-rates",
    "kyc",
    "audit-log",
    "settlement",
    "tokenization",
    "webhooks",
    "batching",
]

# --------------------------------------------------------------------------- helpers


def _digest(*parts: object) -> str:
    return "sha256:" + hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()


def _iso(ts: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def _date(ts: int, fmt: str) -> str:
    return time.strftime(fmt, time.gmtime(ts))


def dump_json(dataset: dict) -> str:
    """The exact text the bundled demo file holds (stable formatting, trailing newline)."""
    return json.dumps(dataset, indent=1, ensure_ascii=False) + "\n"


class _Gen:
    """The shared state of one dataset being built: the random source and the layer map."""

    def __init__(self, seed: int, label: str):
        self.seed = seed
        self.label = label
        self.rng = random.Random(seed)
        self.layers: dict[str, int] = {}
        self._base_digest: dict[str, str] = {}

    def base_layers(self, stack: str, ts: int) -> list[str]:
        old, new, cutover_days = _STACKS[stack]
        names = new if ts >= _CLOCK_TS - cutover_days * _DAY else old
        out = []
        for name in names:
            digest = self._base_digest.get(name)
            if digest is None:
                # Public base layers are the same whatever the seed.
                digest = self._base_digest[name] = _digest("base-layer", name)
                self.layers[digest] = _BASE_SIZES[name]
            out.append(digest)
        return out

    def layer(self, size: int, *parts: object) -> str:
        digest = _digest(self.label, self.seed, *parts)
        self.layers[digest] = size
        return digest


def _make_repo(
    g: _Gen,
    namespace: str,
    name: str,
    profile: str,
    n_tags: int,
    stack: str,
    *,
    span_days: int = 355,
    release_p: float | None = None,
    size_scale: float | None = None,
) -> tuple[dict, list[str]]:
    """One image repository with exactly ``n_tags`` tags; returns it and its tag kinds."""
    rng = g.rng
    if release_p is None:
        release_p = {"semver": 0.2, "calver": 0.25}.get(profile, 0.0)
    if size_scale is None:
        size_scale = rng.lognormvariate(0.0, 0.5)

    # Phase 1: which builds, and which tags each carries.
    reserve_latest = 1 if n_tags >= 2 else 0
    limit = n_tags - reserve_latest
    builds: list[list[str]] = []  # tag kinds per build, the build's own tag first
    reuse: list[bool] = []  # the build re-produced the previous digest (nightlies)
    count = 0
    while count < limit:
        if profile == "semver":
            kinds = ["sha"]
            if rng.random() < release_p and count + 2 <= limit:
                kinds.append("ver")
        elif profile == "calver":
            kinds = ["dev"]
            if rng.random() < release_p and count + 2 <= limit:
                kinds.append("rel")
        elif profile == "nightly":
            kinds = ["nightly"]
        elif profile == "branch":
            kinds = ["sha"] if rng.random() < 0.6 else ["pr"]
        else:  # pragma: no cover - programming error
            raise ValueError(f"unknown profile {profile!r}")
        reuse.append(profile == "nightly" and bool(builds) and rng.random() < 0.12)
        builds.append(kinds)
        count += len(kinds)
    m = len(builds)

    # Phase 2: build times, oldest first.
    if profile == "nightly":
        if m <= span_days:
            step, day_names = _DAY, True
        else:
            step, day_names = max(60, span_days * _DAY // m), False
        last = _CLOCK_TS - _DAY + 2 * 3600
        jitter = min(3600, step // 4)
        times = [last - (m - 1 - i) * step + rng.randint(0, jitter) for i in range(m)]
    else:
        day_names = True
        newest = _CLOCK_TS - rng.randint(2 * 3600, 2 * _DAY)
        oldest = _CLOCK_TS - int(span_days * _DAY * rng.uniform(0.85, 1.0))
        gaps = [rng.expovariate(1.0) for _ in range(m)]
        total = sum(gaps[1:]) or 1.0
        times, acc = [], 0.0
        for i in range(m):
            if i:
                acc += gaps[i]
            times.append(oldest + int((newest - oldest) * acc / total) if m > 1 else newest)

    # Phase 3: names, digests and layers.
    used: set[str] = set()

    def unique(candidate: str) -> str:
        name_, k = candidate, 2
        while name_ in used:
            name_ = f"{candidate}-{k}"
            k += 1
        used.add(name_)
        return name_

    branches = rng.sample(_BRANCHES, rng.randint(3, 5))
    version = [rng.choice([0, 1, 1, 2, 3]), rng.randint(0, 9), 0]
    first_release = True
    pr_number = rng.randint(40, 1800)
    has_deps = rng.random() < 0.7
    deps_digest = ""
    app_median = 6 * _MB * size_scale
    records: list[tuple[int, str, str, list[str]]] = []  # (updated ts, tag, digest, layers)
    latest_target: tuple[int, str, list[str]] | None = None
    seen_release = False
    prev: tuple[str, list[str]] | None = None
    for i, (kinds, t) in enumerate(zip(builds, times)):
        if reuse[i] and prev is not None:
            digest, layers = prev
        else:
            digest = _digest(g.label, g.seed, namespace, name, "manifest", i)
            layers = g.base_layers(stack, t)
            if has_deps:
                if not deps_digest or rng.random() < 0.15:
                    deps_size = int(rng.lognormvariate(math.log(30 * _MB), 0.8))
                    deps_digest = g.layer(deps_size, namespace, name, "deps", i)
                layers.append(deps_digest)
                n_app = rng.choices((1, 2, 3), (50, 35, 15))[0]
            else:
                n_app = rng.choices((1, 2, 3, 4), (40, 30, 20, 10))[0]
            for j in range(n_app):
                size = int(min(1_500 * _MB, max(20_000, rng.lognormvariate(math.log(app_median), 1.2))))
                layers.append(g.layer(size, namespace, name, "app", i, j))
            prev = (digest, layers)
        for kind in kinds:
            if kind == "sha":
                while True:
                    tag = f"sha-{rng.getrandbits(28):07x}"
                    if tag not in used:
                        used.add(tag)
                        break
                ts = t
            elif kind == "pr":
                pr_number += rng.randint(1, 6)
                tag, ts = unique(f"pr-{pr_number}"), t
            elif kind == "dev":
                tag, ts = unique(f"dev-{rng.choice(branches)}-{i + 1}"), t
            elif kind == "nightly":
                fmt = "nightly-%Y.%m.%d" if day_names else "nightly-%Y.%m.%d.%H%M"
                tag, ts = unique(_date(t, fmt)), t
            elif kind == "ver":
                if not first_release:
                    r = rng.random()
                    if r < 0.04:
                        version = [version[0] + 1, 0, 0]
                    elif r < 0.3:
                        version = [version[0], version[1] + 1, 0]
                    else:
                        version[2] += 1
                first_release = False
                ts = min(t + rng.randint(600, _DAY), _CLOCK_TS - 60)
                tag = unique("v{}.{}.{}".format(*version))
            else:  # rel
                ts = min(t + rng.randint(600, _DAY), _CLOCK_TS - 60)
                tag = unique(_date(ts, "release-%Y.%m.%d"))
            records.append((ts, tag, digest, layers))
        # `latest`: the newest release if there is one, else the newest build.
        if len(kinds) > 1 or kinds[0] in ("ver", "rel"):
            latest_target = (records[-1][0], digest, layers)
            seen_release = True
        elif not seen_release:
            latest_target = (t, digest, layers)
    if reserve_latest and latest_target is not None:
        ts = min(latest_target[0] + rng.randint(1, 90), _CLOCK_TS - 30)
        records.append((ts, "latest", latest_target[1], latest_target[2]))

    records.sort(key=lambda r: (-r[0], r[1]))
    tags = [
        {"tag": tag, "digest": digest, "updated": _iso(ts), "layers": list(layers)}
        for ts, tag, digest, layers in records
    ]
    kinds_present = {k for kinds in builds for k in kinds}
    if reserve_latest:
        kinds_present.add("latest")
    repo = {
        "namespace": namespace,
        "name": name,
        "source_code": None,
        "build_rules": [],
        "sync_rules": [],
        "tags": tags,
    }
    return repo, [k for k in _KIND_ORDER if k in kinds_present]



def _build_rules(kinds: list[str]) -> list[dict]:
    return [
        {"push_type": push_type, "push_name": push_name, "image_tag": image_tag}
        for push_type, push_name, image_tag in (_BUILD_RULE_FOR_KIND[k] for k in kinds)
    ]


def _bind_source(repo: dict, kinds: list[str], code_type: str, org: str) -> None:
    repo["source_code"] = {"type": code_type, "namespace": org, "name": repo["name"]}
    repo["build_rules"] = _build_rules(kinds)


def _replicate(
    g: _Gen,
    repo: dict,
    target_instance_id: str,
    *,
    target_namespace: str | None = None,
    target_repo: str | None = None,
    since_ts: int | None = None,
    differ: tuple[str, ...] = (),
) -> dict:
    """Add a sync rule to ``repo`` and return its copy on the target instance.

    ``since_ts``: only tags updated at or after it were replicated (a sync rule that was
    created later). ``differ``: tags re-pushed on the target, so they carry another digest.
    """
    namespace = target_namespace or repo["namespace"]
    name = target_repo or repo["name"]
    repo["sync_rules"].append(
        {"target_instance_id": target_instance_id, "target_namespace": namespace, "target_repo": name}
    )
    since = _iso(since_ts) if since_ts is not None else None
    tags = []
    for tag in repo["tags"]:
        if since is not None and tag["updated"] < since:
            continue
        copy = {"tag": tag["tag"], "digest": tag["digest"], "updated": tag["updated"], "layers": list(tag["layers"])}
        if tag["tag"] in differ:
            copy["digest"] = _digest(g.label, g.seed, target_instance_id, namespace, name, "repush", tag["tag"])
            size = int(g.rng.lognormvariate(math.log(8 * _MB), 1.0))
            copy["layers"] = tag["layers"][:-1] + [
                g.layer(size, target_instance_id, namespace, name, "repush-layer", tag["tag"])
            ]
        tags.append(copy)
    return {
        "namespace": namespace,
        "name": name,
        "source_code": None,
        "build_rules": [],
        "sync_rules": [],
        "tags": tags,
    }


def _chart(g: _Gen, namespace: str, name: str, n_versions: int) -> dict:
    rng = g.rng
    major, minor, patch = 0, 1, 0
    versions = []
    size = rng.randint(6_000, 20_000)
    for i in range(n_versions):
        if i:
            r = rng.random()
            if r < 0.05:
                major, minor, patch = major + 1, 0, 0
            elif r < 0.35:
                minor, patch = minor + 1, 0
            else:
                patch += 1
            size = max(4_000, size + rng.randint(-800, 2_500))
        versions.append({"version": f"{major}.{minor}.{patch}", "size": size})
    return {"namespace": namespace, "name": name, "versions": versions}


def _rule(scope: str, namespace=None, repo=None, count=None, regexp=None, enabled=True) -> dict:
    return {
        "scope": scope,
        "namespace": namespace,
        "repo": repo,
        "retention_tag_count": count,
        "tag_regexp": regexp,
        "enable_delete_tag": enabled,
    }


def _instance(instance_id: str, name: str, region: str, whitelisted: bool, bucket: str) -> dict:
    return {
        "instance_id": instance_id,
        "name": name,
        "region": region,
        "gc_whitelisted": whitelisted,
        "bucket": bucket,
        "namespaces": [],
        "repositories": [],
        "charts": [],
        "lifecycle_rules": [],
    }


def _bucket(name: str, versioning: str | None, lifecycle: list[dict], extra: list[dict]) -> dict:
    return {
        "name": name,
        "versioning": versioning,
        "lifecycle": [dict(rule) for rule in lifecycle],
        "policy": None,
        "extra_objects": extra,
    }


def _namespaces_in_order(repos: list[dict]) -> list[str]:
    seen: dict[str, None] = {}
    for repo in repos:
        seen.setdefault(repo["namespace"], None)
    return list(seen)


# --------------------------------------------------------------------------- generate

_NAMESPACE_NAMES = [
    "platform", "payments", "data", "web", "ml", "mobile", "search", "identity", "growth",
    "infra", "checkout", "catalog", "logistics", "risk", "messaging", "analytics", "media",
    "support", "partners", "security", "billing", "ads", "maps", "iot", "finance", "hr-tools",
    "devex", "observability", "edge", "sandbox",
]  # fmt: skip

_REPO_PREFIXES = [
    "order", "user", "cart", "price", "stock", "invoice", "report", "event", "auth", "token",
    "session", "profile", "search", "index", "feed", "media", "image", "video", "mail", "sms",
    "push", "geo", "route", "rate", "quota", "audit", "config", "secret", "schema", "export",
    "import", "sync", "batch", "stream", "metric", "trace", "log", "alert", "cache", "queue",
]  # fmt: skip

_REPO_SUFFIXES = [
    "service", "api", "worker", "gateway", "consumer", "scheduler", "ui", "cli", "job",
    "proxy", "adapter", "engine", "store", "bff", "cron", "agent",
]  # fmt: skip

_NAMESPACE_RULE_TEMPLATES = [
    (30, r"v\d+\.\d+\.\d+|release-\d{4}\.\d{2}\.\d{2}|latest"),
    (20, None),
    (50, SEMVER_OR_LATEST),
    (10, r"release-.*|v\d+\.\d+\.\d+|latest"),
]


def _namespace_names(n: int) -> list[str]:
    names = _NAMESPACE_NAMES[:n]
    names += [f"team-{k:03d}" for k in range(len(names) + 1, n + 1)]
    return names


def generate(repos: int, tags_per_repo: int, seed: int = 0) -> dict:
    """A deterministic dataset with ``repos`` repositories of exactly ``tags_per_repo`` tags
    each on the main instance ``cri-gen`` (bucket ``cri-gen-storage``, whitelisted), and a
    replica target ``cri-gen-replica`` holding copies of a few repositories."""
    if repos < 0 or tags_per_repo < 0:
        raise ValueError("repos and tags_per_repo must not be negative")
    g = _Gen(seed, "gen")
    rng = g.rng
    namespaces = _namespace_names(max(2, round(repos / 50)))
    n_ns = len(namespaces)

    # Spread repositories unevenly over the namespaces, at least one in each while they last.
    weights = [rng.lognormvariate(0.0, 0.6) for _ in namespaces]
    owners = list(range(min(repos, n_ns))) + rng.choices(range(n_ns), weights, k=max(0, repos - n_ns))
    per_ns: list[list[str]] = [[] for _ in namespaces]
    taken: list[set[str]] = [set() for _ in namespaces]
    for ns_index in owners:
        for _ in range(20):
            candidate = f"{rng.choice(_REPO_PREFIXES)}-{rng.choice(_REPO_SUFFIXES)}"
            if candidate not in taken[ns_index]:
                break
        else:
            base, k = candidate, 2
            while f"{base}-{k}" in taken[ns_index]:
                k += 1
            candidate = f"{base}-{k}"
        taken[ns_index].add(candidate)
        per_ns[ns_index].append(candidate)

    # Lifecycle rules: a disabled instance-wide draft, a rule on every other namespace,
    # and a repository rule on the first repository of each of the other namespaces.
    rules = [_rule("INSTANCE", count=10, enabled=False)]
    ruled_ns = set()
    for k, ns_index in enumerate(range(0, n_ns, 2)):
        count, regexp = _NAMESPACE_RULE_TEMPLATES[k % len(_NAMESPACE_RULE_TEMPLATES)]
        rules.append(_rule("NAMESPACE", namespaces[ns_index], count=count, regexp=regexp))
        ruled_ns.add(ns_index)
    ruled_repos = set()
    for ns_index in range(1, n_ns, 2):
        if per_ns[ns_index]:
            first = per_ns[ns_index][0]
            rules.append(_rule("REPO", namespaces[ns_index], first, count=15, regexp=SEMVER_OR_LATEST))
            ruled_repos.add((ns_index, first))

    stacks, stack_w = list(_STACK_WEIGHTS), list(_STACK_WEIGHTS.values())
    profiles, profile_w = list(_PROFILE_WEIGHTS), list(_PROFILE_WEIGHTS.values())
    main = _instance("cri-gen", "gen-registry", "cn-hangzhou", True, "cri-gen-storage")
    main["namespaces"] = list(namespaces)
    main["lifecycle_rules"] = rules
    ruled: list[tuple[dict, list[str]]] = []
    for ns_index, names in enumerate(per_ns):
        namespace = namespaces[ns_index]
        for name in names:
            profile = rng.choices(profiles, profile_w)[0]
            stack = rng.choices(stacks, stack_w)[0]
            repo, kinds = _make_repo(g, namespace, name, profile, tags_per_repo, stack)
            main["repositories"].append(repo)
            if ns_index in ruled_ns or (ns_index, name) in ruled_repos:
                ruled.append((repo, kinds))
            elif rng.random() < 0.4:
                _bind_source(repo, kinds, rng.choice(["GITHUB", "GITLAB", "CODEUP"]), namespace)

    # A few repositories with applying rules are replicated instead of built; every other
    # repository with applying rules builds all its tag kinds from source, so the gate passes.
    n_replicated = min(len(ruled), 3 + repos // 250)
    replicated = sorted(rng.sample(range(len(ruled)), n_replicated))
    replica = _instance("cri-gen-replica", "gen-registry-replica", "cn-shanghai", False, "cri-gen-replica-storage")
    for k, (repo, kinds) in enumerate(ruled):
        if k not in replicated:
            _bind_source(repo, kinds, rng.choice(["GITHUB", "GITLAB", "CODEUP"]), repo["namespace"])
    for position, k in enumerate(replicated):
        repo, kinds = ruled[k]
        differ: tuple[str, ...] = ()
        if position == 0 and repo["tags"]:
            # The replica's copy of the newest tag was re-pushed (another digest); every
            # enabled rule keeps at least the newest tag, so the gate is unaffected.
            differ = (repo["tags"][0]["tag"],)
        elif position == len(replicated) - 1 and repo["tags"]:
            # Built from source as well: its oldest tag differs on the replica, so that tag
            # can only be regenerated by its build rule.
            _bind_source(repo, kinds, "GITHUB", repo["namespace"])
            differ = (repo["tags"][-1]["tag"],)
        replica["repositories"].append(_replicate(g, repo, "cri-gen-replica", differ=differ))
    replica["namespaces"] = _namespaces_in_order(replica["repositories"])

    main["charts"].append(_chart(g, namespaces[0], "helm-charts", 24))
    main["charts"].append(_chart(g, namespaces[1], f"{namespaces[1]}-charts", 9))

    extra = [
        {"key": "acr-audit/2026/10/events.json.gz", "size": 3_482_113},
        {"key": "exports/inventory-2026-09-30.csv", "size": 18_220_402},
        {"key": "docker/registry/v2/repositories/_uploads/0b7c4e2d/data", "size": 61_003_776},
    ]
    return {
        "clock": CLOCK,
        "credentials": [dict(c) for c in CREDENTIALS],
        "layers": g.layers,
        "instances": [main, replica],
        "buckets": [
            _bucket("cri-gen-storage", "Enabled", NONCURRENT_EXPIRY, extra),
            _bucket("cri-gen-replica-storage", None, [], []),
        ],
    }


# --------------------------------------------------------------------------- the demo

# (namespace, repository, profile, tags, base stack, how its expired tags are regenerable)
#   build:     source-code binding + build rules for all its tag kinds
#   sync:      copied to cri-demo-dr by a sync rule
#   manifest:  no binding; rows in demo-regeneration.csv
#   none:      nothing (only where no enabled lifecycle rule applies)
_DEMO_REPOS: list[tuple[str, str, str, int, str, str]] = [
    ("platform", "api-gateway", "semver", 96, "alpine", "build"),
    ("platform", "auth-service", "semver", 84, "debian", "build"),
    ("platform", "config-server", "semver", 62, "jre", "build"),
    ("platform", "service-mesh-proxy", "semver", 110, "alpine", "build"),
    ("platform", "log-shipper", "semver", 48, "alpine", "build"),
    ("platform", "metrics-agent", "semver", 70, "alpine", "build"),
    ("platform", "base-images", "semver", 44, "ubuntu", "build"),
    ("platform", "ci-runner", "semver", 58, "ubuntu", "manifest"),
    ("platform", "cert-manager", "semver", 36, "alpine", "build"),
    ("platform", "ingress-controller", "semver", 90, "debian", "build+sync"),
    ("payments", "ledger", "calver", 120, "jre", "sync"),
    ("payments", "card-processor", "calver", 105, "jre", "sync"),
    ("payments", "fraud-scoring", "calver", 90, "python", "build+sync"),
    ("payments", "payouts", "calver", 80, "jre", "sync"),
    ("payments", "billing-api", "calver", 75, "node", "build"),
    ("payments", "reconciliation", "calver", 60, "python-slim", "sync"),
    ("payments", "notification", "calver", 45, "node-alpine", "build"),
    ("payments", "payment-gateway", "calver", 66, "alpine", "sync"),
    ("data", "etl-jobs", "nightly", 120, "python", "manifest"),
    ("data", "dbt-models", "nightly", 90, "python-slim", "manifest"),
    ("data", "feature-store", "semver", 70, "python-slim", "build"),
    ("data", "airflow-dags", "branch", 64, "python", "build"),
    ("data", "spark-runner", "semver", 52, "jre", "manifest"),
    ("data", "warehouse-loader", "calver", 55, "python-slim", "build"),
    ("data", "data-quality", "nightly", 40, "python-slim", "build"),
    ("web", "storefront", "semver", 100, "node", "build"),
    ("web", "checkout-ui", "branch", 70, "node-alpine", "build"),
    ("web", "admin-portal", "branch", 55, "node-alpine", "none"),
    ("web", "docs-site", "nightly", 35, "alpine", "none"),
    ("web", "landing-page", "branch", 30, "alpine", "none"),
    ("web", "mobile-bff", "semver", 60, "node", "build"),
    ("web", "search-ui", "branch", 45, "node-alpine", "none"),
    ("web", "cdn-edge", "branch", 40, "alpine", "none"),
    ("ml", "model-server", "semver", 64, "python", "build"),
    ("ml", "training-base", "semver", 30, "cuda", "none"),
    ("ml", "inference-gpu", "semver", 36, "cuda", "none"),
    ("ml", "inference-cpu", "semver", 44, "python-slim", "build"),
    ("ml", "notebooks", "branch", 40, "python", "none"),
]

_DEMO_NAMESPACES = ["platform", "payments", "data", "web", "ml"]

_DEMO_RULES = [
    # A draft "keep 5 everywhere" someone left disabled: it deletes nothing.
    _rule("INSTANCE", count=5, enabled=False),
    _rule("NAMESPACE", "platform", count=20, regexp=SEMVER_OR_LATEST),
    _rule("NAMESPACE", "payments", count=25, regexp=RELEASE_OR_LATEST),
    _rule("NAMESPACE", "data", count=10),
    _rule("REPO", "platform", "base-images", count=40),
    _rule("REPO", "web", "storefront", count=15, regexp=SEMVER_OR_LATEST),
    _rule("REPO", "ml", "model-server", count=8, regexp=SEMVER_OR_LATEST),
    # Disabled as well: docs-site therefore keeps every tag.
    _rule("REPO", "web", "docs-site", count=3, enabled=False),
]

_GIT = "git@example.com"


def _demo_build() -> tuple[dict, list[list[str]]]:
    g = _Gen(DEMO_SEED, "demo")
    main = _instance("cri-demo", "demo-registry", "cn-hangzhou", True, "cri-demo-storage")
    main["namespaces"] = list(_DEMO_NAMESPACES)
    main["lifecycle_rules"] = [dict(r) for r in _DEMO_RULES]
    dr = _instance("cri-demo-dr", "demo-registry-dr", "cn-shanghai", False, "cri-demo-dr-storage")
    manifest_rows: list[list[str]] = []
    for namespace, name, profile, n_tags, stack, coverage in _DEMO_REPOS:
        repo, kinds = _make_repo(g, namespace, name, profile, n_tags, stack)
        main["repositories"].append(repo)
        if "build" in coverage:
            _bind_source(repo, kinds, "GITLAB" if namespace == "payments" else "GITHUB", namespace)
        if "sync" in coverage:
            options: dict = {}
            if name == "ledger":
                options["target_repo"] = "ledger-mirror"  # the DR copy has another name
            elif name == "fraud-scoring":
                # The sync rule is younger than the repository: only recent tags are on the DR
                # instance; the older ones are regenerable by the build rules only.
                options["since_ts"] = _CLOCK_TS - 150 * _DAY
            elif name == "payouts":
                # An old dev tag was re-pushed on the DR instance (another digest), so the
                # replica does not vouch for it; the operator's manifest does.
                old = next(t["tag"] for t in reversed(repo["tags"]) if t["tag"].startswith("dev-"))
                options["differ"] = (old,)
                manifest_rows.append(
                    ["payments", "payouts", old, f"{_GIT}:payments/payouts.git@develop via make image TAG={old}"]
                )
            elif name == "card-processor":
                # The DR copy's `latest` still points at the previous release (sync lag);
                # `latest` is kept on the main instance, so nothing depends on it.
                options["differ"] = ("latest",)
            dr["repositories"].append(_replicate(g, repo, "cri-demo-dr", **options))
        if coverage == "manifest":
            if profile == "nightly":
                manifest_rows.append(
                    [namespace, name, "nightly-*", f"{_GIT}:{namespace}/{name}.git@main via make image DATE=<date>"]
                )
            elif name == "ci-runner":
                manifest_rows.append(
                    [namespace, name, "sha-*", f"{_GIT}:{namespace}/{name}.git@<sha> via docker buildx bake"]
                )
                manifest_rows.append(
                    [namespace, name, "v*", f"{_GIT}:{namespace}/{name}.git@<tag> via docker buildx bake"]
                )
            else:
                manifest_rows.append(
                    [namespace, name, "*", f"{_GIT}:{namespace}/{name}.git@<tag or sha> via ./build.sh"]
                )
    dr["namespaces"] = _namespaces_in_order(dr["repositories"])

    main["charts"].append(_chart(g, "platform", "platform-charts", 26))
    main["charts"].append(_chart(g, "web", "storefront-chart", 12))

    extra = [
        {"key": "acr-audit/2026/10/events-2026-10.json.gz", "size": 3_482_113},
        {"key": "exports/inventory-2026-09-30.csv", "size": 18_220_402},
        {"key": "docker/registry/v2/repositories/payments/ledger/_uploads/7c1e5a90/data", "size": 61_003_776},
        {"key": "migration/harbor-export-2025-11-14.tar", "size": 412_316_860},
    ]
    dataset = {
        "clock": CLOCK,
        "credentials": [dict(c) for c in CREDENTIALS],
        "layers": g.layers,
        "instances": [main, dr],
        "buckets": [
            _bucket("cri-demo-storage", "Enabled", NONCURRENT_EXPIRY, extra),
            _bucket("cri-demo-dr-storage", None, [], []),
        ],
    }
    return dataset, manifest_rows


def demo_dataset() -> dict:
    """The bundled demo dataset (``data/demo.json`` holds exactly this)."""
    return _demo_build()[0]


def demo_regeneration_rows() -> list[dict[str, str]]:
    """The demo's regeneration manifest rows (namespace, repo, tag_glob, source)."""
    return [dict(zip(("namespace", "repo", "tag_glob", "source"), row)) for row in _demo_build()[1]]


def demo_regeneration_csv() -> str:
    """The text of ``data/demo-regeneration.csv``."""
    out = io.StringIO()
    writer = csv.DictWriter(out, ["namespace", "repo", "tag_glob", "source"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(demo_regeneration_rows())
    return out.getvalue()


def write_demo_files(directory: Path = DATA_DIR) -> None:
    """(Re)write ``demo.json`` and ``demo-regeneration.csv`` from this module."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / DEMO_JSON.name).write_text(dump_json(demo_dataset()), encoding="utf-8")
    (directory / DEMO_REGENERATION_CSV.name).write_text(demo_regeneration_csv(), encoding="utf-8")


if __name__ == "__main__":  # python -m acr_gc.emulator.generator --write-demo
    if sys.argv[1:] == ["--write-demo"]:
        write_demo_files()
    else:
        sys.exit("usage: python -m acr_gc.emulator.generator --write-demo")
