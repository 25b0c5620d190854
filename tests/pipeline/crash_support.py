"""Helpers for the crash and cancellation tests (tests/pipeline/test_pipeline_crash.py,
tests/pipeline/test_pipeline_cancel.py): a hand-worked dataset, a config file, a real
Prefect server as a subprocess, CLI runs in their own process groups, and bounded waits
that fail with the emulator's log tail and the CLI's output.

Imported by those two test files through ``sys.path`` (no conftest, so the module names
stay private to them).

The instance ``cri-crash`` (clock 2026-11-01), bucket ``cri-crash-storage``:

    apps/api : a00 … a22 (23 tags, a<i> updated 2026-10-01 + i hours) and v2 (2026-01-01)
    apps/web : b00 … b22 (23 tags, b<i> updated 2026-10-01 + i hours) and v1 (2026-01-01)
    keep/tools: t1, t2 (no lifecycle rule applies: every tag is kept)

One lifecycle rule: NAMESPACE apps, RetentionTagCount 3, TagRegexp ``v\\d+``. Per apps
repository, newest first: a22, a21, a20 are kept by count (b22, b21, b20 likewise); v2
(v1) is the oldest but fully matches ``v\\d+``: kept by the regexp. Expired: a00 … a19
and b00 … b19 = 20 + 20 = 40 tags. Every apps repository has a source-code binding and a
build rule ``*``, so every expired tag is regenerable (``build-rule``) and the gate passes.

The emulator deletes apps/api first (repositories by namespace, name), oldest tag first.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import sys
import tempfile
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

import yaml
from child_kit import Child  # noqa: F401 - the tests use it from here
from child_kit import wait_for as wait_until
from prefect_server_kit import PrefectServer  # noqa: F401 - the crash and cancel tests use it from here

ROOT = Path(__file__).resolve().parents[2]

# The cancellation test uses a Prefect client in this process: never an operator's own
# Prefect home (the API URL is always given explicitly through temporary settings).
if "prefect" not in sys.modules:
    os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="acr-gc-test-prefect-home-"))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
AK, SECRET = "LTAI-crash-cancel", "crash-cancel-secret-not-real"
INSTANCE, BUCKET = "cri-crash", "cri-crash-storage"
FREEZE_PREFIX = "AcrGcFreeze"

# The bucket's own policy: another statement, that thaw must give back JSON-equal.
ORIGINAL_POLICY = {
    "Version": "1",
    "Statement": [
        {
            "Sid": "AllowCiRead",
            "Effect": "Allow",
            "Principal": ["ci-reader"],
            "Action": ["oss:GetObject", "oss:ListObjects"],
            "Resource": [f"acs:oss:*:*:{BUCKET}/*"],
        }
    ],
}

_START = datetime(2026, 10, 1, tzinfo=timezone.utc)


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _sha(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def _tag(name: str, updated: str) -> dict:
    return {"tag": name, "digest": _sha(f"image-{name}"), "updated": updated,
            "layers": [_sha("layer-base"), _sha(f"layer-{name}")]}


def _numbered(prefix: str) -> list[dict]:
    return [_tag(f"{prefix}{i:02d}", _iso(_START + timedelta(hours=i))) for i in range(23)]


API_TAGS = [f"a{i:02d}" for i in range(23)] + ["v2"]
WEB_TAGS = [f"b{i:02d}" for i in range(23)] + ["v1"]
# Worked out by hand (module docstring): what GC may delete, and what must be left.
EXPIRED = {("apps", "api", f"a{i:02d}") for i in range(20)} | {("apps", "web", f"b{i:02d}") for i in range(20)}
RETAINED = {
    "apps/api": sorted(["a20", "a21", "a22", "v2"]),
    "apps/web": sorted(["b20", "b21", "b22", "v1"]),
    "keep/tools": ["t1", "t2"],
}
ALL_TAGS = {"apps/api": sorted(API_TAGS), "apps/web": sorted(WEB_TAGS), "keep/tools": ["t1", "t2"]}
assert len(EXPIRED) == 40


def dataset(policy: dict | None) -> dict:
    github = {"type": "GITHUB", "namespace": "acme", "name": "code"}
    build_star = [{"push_type": "GIT_BRANCH", "push_name": "main", "image_tag": "*"}]
    names = API_TAGS + WEB_TAGS + ["t1", "t2"]
    return {
        "clock": "2026-11-01T00:00:00Z",
        "credentials": [{"access_key_id": AK, "access_key_secret": SECRET, "principal": "ops"}],
        "layers": {_sha("layer-base"): 50_000, **{_sha(f"layer-{n}"): 1_000 for n in names}},
        "instances": [{
            "instance_id": INSTANCE,
            "name": "crash",
            "region": "cn-hangzhou",
            "gc_whitelisted": True,
            "bucket": BUCKET,
            "namespaces": ["apps", "keep"],
            "repositories": [
                {"namespace": "apps", "name": "api", "source_code": github, "build_rules": build_star,
                 "sync_rules": [], "tags": _numbered("a") + [_tag("v2", "2026-01-01T00:00:00Z")]},
                {"namespace": "apps", "name": "web", "source_code": github, "build_rules": build_star,
                 "sync_rules": [], "tags": _numbered("b") + [_tag("v1", "2026-01-01T00:00:00Z")]},
                {"namespace": "keep", "name": "tools", "source_code": None, "build_rules": [], "sync_rules": [],
                 "tags": [_tag("t1", "2026-10-02T00:00:00Z"), _tag("t2", "2025-01-01T00:00:00Z")]},
            ],
            "charts": [],
            "lifecycle_rules": [{"scope": "NAMESPACE", "namespace": "apps", "retention_tag_count": 3,
                                 "tag_regexp": r"v\d+", "enable_delete_tag": True}],
        }],
        "buckets": [{"name": BUCKET, "versioning": "Enabled",
                     "lifecycle": [{"id": "nc", "prefix": "docker/", "noncurrent_days": 3}],
                     "policy": policy, "extra_objects": []}],
    }


def write_config(path: Path, emu, workdir: Path, poll_interval: str = "PT1S") -> Path:
    config = {
        "target": {"region": "cn-hangzhou", "instance_id": INSTANCE, "bucket": BUCKET,
                   "acr_endpoint": emu.acr_endpoint, "oss_endpoint": emu.oss_endpoint, "credentials": "chain"},
        "policy": {"allow_unregenerable": [], "regeneration_manifest": None, "accept_never_released": False,
                   "semantics": {"combination": "any-retains", "count_regexp": "count-or-match",
                                 "regexp_match": "full"}},  # hand-worked under the default reading
        "freeze": {"principals": ["ci-pusher"], "hold_until": "gc_complete"},
        "gc": {"driver": "emulator", "timeout": "PT10M", "poll_interval": poll_interval, "on_timeout": "cancel"},
        "sampling": {"mode": "scheduled", "interval": "P1D", "day_length": "P1D", "margin_days": 2},
        "report": {"out_dir": str(workdir / "out"), "price_per_gb_month": 0.12, "currency": "CNY"},
        "ledger": {"url": f"sqlite:///{workdir / 'ledger.db'}"},
        "api": {"qps": 50, "concurrency": 4, "retries": 6},
    }
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def config_dict(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


# ---- environment ---------------------------------------------------------------------


def base_env(prefect_home: Path, api_url: str | None) -> dict[str, str]:
    """The environment of every child: dataset credentials, a private Prefect home, our API."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALIBABA_CLOUD_", "PREFECT_"))}
    env.update(
        ALIBABA_CLOUD_ACCESS_KEY_ID=AK,
        ALIBABA_CLOUD_ACCESS_KEY_SECRET=SECRET,
        PREFECT_HOME=str(prefect_home),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_SERVER_UI_ENABLED="false",
        PYTHONPATH=str(ROOT),
        PYTHONUNBUFFERED="1",
        COLUMNS="200",
    )
    if api_url:
        env["PREFECT_API_URL"] = api_url
    return env


# ---- processes in their own process groups -------------------------------------------


class Children:
    """Every child a test starts; ``stop_all`` is the fixture finaliser."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.started: list[Child] = []

    def start(self, name: str, args: list[str], env: dict[str, str]) -> Child:
        child = Child(args, env, self.workdir / f"{name}-{len(self.started)}.log")
        self.started.append(child)
        return child

    def stop_all(self) -> None:
        for child in reversed(self.started):
            child.stop()


def acr_gc_args(*args: str) -> list[str]:
    return [sys.executable, "-m", "acr_gc.cli", *args]


# ---- a Prefect server ----------------------------------------------------------------


# ---- waits and observations ----------------------------------------------------------


def diagnostics(emu, *children: Child) -> str:
    parts = [f"--- emulator log tail ---\n{emu.log_tail(3000)}"]
    for child in children:
        parts.append(f"--- output of {' '.join(child.args[2:5])} (pid {child.pid}, rc {child.poll()}) ---\n"
                     f"{child.output()}")
    return "\n".join(parts)


def wait_for(what: str, predicate: Callable[[], Any], timeout: float, emu, *children: Child, interval=0.2):
    """Poll ``predicate`` until it returns something truthy; fail with diagnostics on timeout."""
    return wait_until(what, predicate, timeout, lambda: diagnostics(emu, *children), interval)


def freeze_sids(policy: dict | None) -> list[str]:
    if not policy:
        return []
    statements = policy.get("Statement") or []
    if isinstance(statements, dict):
        statements = [statements]
    return [s.get("Sid") for s in statements if str(s.get("Sid", "")).startswith(FREEZE_PREFIX)]


def gc_tasks(truth: dict) -> list[dict]:
    return truth["instances"][INSTANCE]["gc_tasks"]


def bucket_policy(truth: dict) -> dict | None:
    return truth["buckets"][BUCKET]["policy"]


class TruthRecorder:
    """Samples the emulator's truth in the background: every GC task id and every policy seen."""

    def __init__(self, emu, interval: float = 0.25):
        self.emu, self.interval = emu, interval
        self.task_ids: set[str] = set()
        self.policies: list[dict | None] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def sample(self) -> dict | None:
        try:
            truth = self.emu.truth()
        except Exception as exc:  # noqa: BLE001 - recorded, and the test fails on it
            self.errors.append(str(exc))
            return None
        self.task_ids.update(task["task_id"] for task in gc_tasks(truth))
        policy = bucket_policy(truth)
        if not self.policies or self.policies[-1] != policy:
            self.policies.append(policy)
        return truth

    def __enter__(self) -> "TruthRecorder":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(10)
        self.sample()


def gc_running_and_frozen(emu) -> Callable[[], dict | None]:
    def check():
        truth = emu.truth()
        running = [t for t in gc_tasks(truth) if t["state"] == "RUNNING"]
        if running and freeze_sids(bucket_policy(truth)):
            return truth
        return None

    return check


def ledger_freezes(workdir: Path) -> list[tuple]:
    """(run_id, sid, status) of every freeze the ledger recorded, read with plain sqlite3."""
    with sqlite3.connect(workdir / "ledger.db") as db:
        return db.execute("SELECT run_id, sid, status FROM freezes ORDER BY id").fetchall()


def read_summary(workdir: Path, run_output: str) -> dict:
    """The summary.json of the run folder the CLI printed as its last line."""
    folder = Path(run_output.strip().splitlines()[-1])
    return json.loads((folder / "summary.json").read_text(encoding="utf-8"))
