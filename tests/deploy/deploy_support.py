"""Helpers of the deployment tests (tests/deploy/test_deploy_*.py): hand-worked datasets,
configs, a real ``prefect server start`` (UI on), ``prefect deploy`` of the real
prefect.yaml, a process worker, headless Chromium, and bounded waits that fail with the
server's, worker's and emulator's log tails.

Imported by its unique name: pytest's default import mode puts this folder (it has no
``__init__.py``) on ``sys.path`` when it imports a test module from it.

Every subprocess runs in its own session / process group; ``stop()`` SIGTERMs the group,
then SIGKILLs whatever is left (the worker's flow-run subprocesses, the server's
uvicorn), so nothing outlives a test.

Hand-worked datasets (no planner code is called to work these out)
-------------------------------------------------------------------
One lifecycle rule per instance: ``NAMESPACE apps, RetentionTagCount 2, TagRegexp
stable``. In every ``apps`` repository the two newest tags are kept by count, ``stable``
(the oldest) by the regexp, every other tag expires. ``tools/cli`` has no rule applying:
every tag kept.

``cri-dep`` (the deployment test): apps/api r1 … r4 + stable; tools/cli t1.
    expired: apps/api r1, r2 (each its own image); regenerable by the build rule ``r*``
    on the bound GitHub source. Left: apps/api r3, r4, stable; tools/cli t1.

``cri-fleet-a`` / ``cri-fleet-b`` (the fleet test): apps/api e00 … e29, k1, k2 + stable.
    k1, k2 are the two newest (kept by count), stable kept by regexp, e00 … e29 (30 tags)
    expired, regenerable by the build rule ``e*``. Left: apps/api k1, k2, stable;
    tools/cli t1.

``cri-fleet-c``: the same apps/api, plus apps/legacy old, cur1, cur2 with NO source
    binding, no build rule, no sync rule, no manifest, and ``old``'s image in no retained
    tag: cur2, cur1 kept by count, ``old`` expired with no way back, so the gate blocks and
    nothing in the cloud changes.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

from child_kit import Child, wait_for  # noqa: F401 - the tests use them from here
from acr_gc.prefect_api import drain_prefect_workers
from prefect_server_kit import PrefectServer

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS_DIR = ROOT / "test-artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

AK, SECRET, PRINCIPAL = "LTAI-deploy-ops", "deploy-ops-secret-not-real", "uid-deploy-ops-7007"
CLOCK = "2026-11-01T00:00:00Z"
GITHUB = {"type": "GITHUB", "namespace": "acme", "name": "code"}


# ---- datasets ---------------------------------------------------------------------------


def _sha(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def _tag(instance: str, name: str, updated: str, image: str | None = None) -> dict:
    image = f"{instance}-{image or name}"
    return {"tag": name, "digest": _sha(f"image-{image}"), "updated": updated,
            "layers": [_sha("layer-base"), _sha(f"layer-{image}")]}


def _repo(namespace, name, tags, bound: bool, build_rules=()) -> dict:
    return {"namespace": namespace, "name": name, "source_code": GITHUB if bound else None,
            "build_rules": [{"push_type": "GIT_BRANCH", "push_name": "main", "image_tag": p} for p in build_rules],
            "sync_rules": [], "tags": tags}


RULES = [{"scope": "NAMESPACE", "namespace": "apps", "retention_tag_count": 2, "tag_regexp": "stable",
          "enable_delete_tag": True}]


def original_policy(bucket: str) -> dict:
    """The bucket's own policy (another principal's read access): thaw must give it back."""
    return {"Version": "1", "Statement": [{
        "Sid": "AllowCiRead", "Effect": "Allow", "Principal": ["uid-ci-reader-8008"],
        "Action": ["oss:GetObject", "oss:ListObjects"], "Resource": [f"acs:oss:*:*:{bucket}/*"]}]}


def _instance(instance_id: str, repositories: list[dict]) -> dict:
    return {"instance_id": instance_id, "name": instance_id, "region": "cn-hangzhou", "gc_whitelisted": True,
            "bucket": bucket_of(instance_id), "namespaces": sorted({r["namespace"] for r in repositories}),
            "repositories": repositories, "charts": [], "lifecycle_rules": copy.deepcopy(RULES)}


def _bucket(name: str) -> dict:
    return {"name": name, "versioning": "Enabled",
            "lifecycle": [{"id": "nc", "prefix": "docker/", "noncurrent_days": 1}],
            "policy": original_policy(name), "extra_objects": [{"key": "exports/finance.csv", "size": 2_000}]}


def bucket_of(instance_id: str) -> str:
    return f"{instance_id}-storage"


def _layers(instances: list[dict]) -> dict:
    sizes = {_sha("layer-base"): 200_000_000}
    for inst in instances:
        for repository in inst["repositories"]:
            for t in repository["tags"]:
                sizes[t["layers"][1]] = 150_000_000
    return sizes


def _dataset(instances: list[dict]) -> dict:
    return {
        "clock": CLOCK,
        "credentials": [{"access_key_id": AK, "access_key_secret": SECRET, "principal": PRINCIPAL}],
        "layers": _layers(instances),
        "instances": instances,
        "buckets": [_bucket(i["bucket"]) for i in instances],
    }


# cri-dep -------------------------------------------------------------------------------
DEP = "cri-dep"
DEP_RETAINED = {"apps/api": ["r3", "r4", "stable"], "tools/cli": ["t1"]}
DEP_EXPIRED = {"apps/api": ["r1", "r2"]}


def dep_dataset() -> dict:
    api = [_tag(DEP, "r4", "2026-10-20T00:00:00Z"), _tag(DEP, "r3", "2026-10-19T00:00:00Z"),
           _tag(DEP, "r2", "2026-10-18T00:00:00Z"), _tag(DEP, "r1", "2026-10-17T00:00:00Z"),
           _tag(DEP, "stable", "2026-01-01T00:00:00Z")]
    cli = [_tag(DEP, "t1", "2025-06-01T00:00:00Z")]
    return _dataset([_instance(DEP, [_repo("apps", "api", api, True, ["r*"]), _repo("tools", "cli", cli, False)])])


# the fleet ----------------------------------------------------------------------------
FLEET_A, FLEET_B, FLEET_C = "cri-fleet-a", "cri-fleet-b", "cri-fleet-c"
FLEET_EXPIRED_PER_INSTANCE = 30
FLEET_RETAINED = {"apps/api": ["k1", "k2", "stable"], "tools/cli": ["t1"]}
_START = datetime(2026, 9, 1, tzinfo=timezone.utc)


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _fleet_instance(instance_id: str, blocked: bool) -> dict:
    api = [_tag(instance_id, f"e{i:02d}", _iso(_START + timedelta(hours=i))) for i in range(FLEET_EXPIRED_PER_INSTANCE)]
    api += [_tag(instance_id, "k1", "2026-10-20T00:00:00Z"), _tag(instance_id, "k2", "2026-10-21T00:00:00Z"),
            _tag(instance_id, "stable", "2026-01-01T00:00:00Z")]
    repositories = [_repo("apps", "api", api, True, ["e*"]),
                    _repo("tools", "cli", [_tag(instance_id, "t1", "2025-06-01T00:00:00Z")], False)]
    if blocked:
        legacy = [_tag(instance_id, "cur2", "2026-10-10T00:00:00Z"), _tag(instance_id, "cur1", "2026-10-09T00:00:00Z"),
                  _tag(instance_id, "old", "2026-03-01T00:00:00Z")]
        repositories.append(_repo("apps", "legacy", legacy, False))
    return _instance(instance_id, repositories)


def fleet_dataset() -> dict:
    return _dataset([_fleet_instance(FLEET_A, False), _fleet_instance(FLEET_B, False),
                     _fleet_instance(FLEET_C, True)])


def all_tags(dataset: dict, instance_id: str) -> dict[str, list[str]]:
    """Every tag of an instance in the dataset, as the emulator's truth lists them."""
    inst = next(i for i in dataset["instances"] if i["instance_id"] == instance_id)
    return {f"{r['namespace']}/{r['name']}": sorted(t["tag"] for t in r["tags"]) for r in inst["repositories"]}


# ---- configs ----------------------------------------------------------------------------


def config_dict(emu, instance_id: str, root: Path, *, sampling: dict | None = None, ledger: Path | None = None) -> dict:
    return {
        "target": {"region": "cn-hangzhou", "instance_id": instance_id, "bucket": bucket_of(instance_id),
                   "acr_endpoint": emu.acr_endpoint, "oss_endpoint": emu.oss_endpoint, "credentials": "chain"},
        "policy": {"allow_unregenerable": [], "regeneration_manifest": None, "accept_never_released": False,
                   # hand-worked under the emulator's default reading (issue 11 made conservative the default)
                   "semantics": {"combination": "any-retains", "count_regexp": "count-or-match",
                                 "regexp_match": "full"}},
        "freeze": {"principals": ["acs:ram::1234567890:user/ci-pusher"], "hold_until": "gc_complete"},
        "gc": {"driver": "emulator", "timeout": "PT5M", "poll_interval": "PT0.2S", "on_timeout": "cancel"},
        "sampling": sampling or {"mode": "scheduled", "interval": "P1D", "day_length": "P1D", "margin_days": 1},
        "report": {"out_dir": str(root / "out"), "price_per_gb_month": 0.12, "currency": "CNY"},
        "ledger": {"url": f"sqlite:///{ledger or root / 'ledger.db'}"},
        "api": {"qps": 200, "concurrency": 4, "retries": 6},
    }


# ---- processes --------------------------------------------------------------------------


def child_env(prefect_home: Path, api_url: str | None, **extra: str) -> dict[str, str]:
    """A child's environment: the emulator's key, a private Prefect home, our API only."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALIBABA_CLOUD_", "PREFECT_"))}
    env.update(
        ALIBABA_CLOUD_ACCESS_KEY_ID=AK,
        ALIBABA_CLOUD_ACCESS_KEY_SECRET=SECRET,
        PREFECT_HOME=str(prefect_home),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        DO_NOT_TRACK="1",
        PYTHONUNBUFFERED="1",
        COLUMNS="200",
        **extra,
    )
    if api_url:
        env["PREFECT_API_URL"] = api_url
    return env


def prefect_cli(*args: str, env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess:
    """``prefect <args>`` from the project root, ``PWD`` the project root (the pull step
    of prefect.yaml is ``set_working_directory: {{ $PWD }}``), in its own process group."""
    env = dict(env, PWD=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "prefect", *args], env=env, cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        raise AssertionError(f"prefect {' '.join(args)} did not finish in {timeout}s:\n{out[-4000:]}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, "")


def tails(*parts: tuple[str, str]) -> str:
    return "\n".join(f"--- {name} ---\n{text}" for name, text in parts)


def api_settings(api_url: str):
    """Temporary settings pointing this process's Prefect client at ``api_url``."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    return temporary_settings(updates={PREFECT_API_URL: api_url})


# ---- a server for one test module -----------------------------------------------------------

@contextmanager
def deployment_server() -> Iterator[PrefectServer]:
    """A ``prefect server start`` with the UI on, for one test module; stopped when it ends.
    This process's Prefect event and log workers are drained before (one bound to the
    session's test server would carry this server's events there) and after."""
    drain_prefect_workers(timeout_s=15)
    server = PrefectServer(ui=True)
    try:
        yield server
    finally:
        drain_prefect_workers(timeout_s=15)
        server.stop()


# ---- headless Chromium --------------------------------------------------------------------

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--window-size=1400,1800", "--virtual-time-budget=15000",
                  "--run-all-compositor-stages-before-draw", "--hide-scrollbars"]


def chromium(url: str, profile: Path, *mode: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """One headless Chromium invocation (own process group, killed on timeout)."""
    args = [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *mode, url]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise AssertionError(f"chromium did not finish in {timeout}s on {url}:\n{err[-3000:]}")
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # renderer/gpu helpers left behind, if any
        except ProcessLookupError:
            pass
    return subprocess.CompletedProcess(args, proc.returncode, out, err)


def read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


# ---- the deployed stack: pool, deploy, worker, emulator, one monthly run ------------------

DAY_SECONDS = 1.0  # one emulated day per real second: the inline window (1 + 1 days) takes ~2 s


class MonthlyRun:
    """The real prefect.yaml deployed to a deployment server, a process worker on the
    pool, an emulator holding ``cri-dep``, and one run of ``reclaim-storage/monthly``
    triggered with ``run_deployment`` and this emulator's config as its parameter."""

    def __init__(self, server: PrefectServer):
        from emulator_kit import new_emulator

        self.server = server
        self.workdir = Path(tempfile.mkdtemp(prefix="acr-gc-deploy-run-"))
        self.worker: Child | None = None
        self.emu = None
        self.dataset = dep_dataset()
        try:
            env = child_env(server.home, server.api_url)
            result = prefect_cli("work-pool", "create", "acr-gc", "--type", "process", "--overwrite", env=env)
            assert result.returncode == 0, f"work-pool create failed:\n{result.stdout[-4000:]}"
            self.deploy_output = prefect_cli("--no-prompt", "deploy", "--all", env=env, timeout=240)
            assert self.deploy_output.returncode == 0, \
                f"prefect deploy --all failed:\n{self.deploy_output.stdout[-6000:]}\n{self.diagnostics()}"
            self.worker = Child([sys.executable, "-m", "prefect", "worker", "start", "--pool", "acr-gc",
                                 "--name", "acr-gc-test-worker"],
                                child_env(server.home, server.api_url, PREFECT_WORKER_QUERY_SECONDS="1",
                                          PREFECT_WORKER_PREFETCH_SECONDS="5", PWD=str(ROOT)),
                                self.workdir / "worker.log")
            self.emu = new_emulator(self.dataset, day_seconds=DAY_SECONDS, gc_tags_per_second=50).start()
            self.truth_before = self.emu.truth()
            self.config = config_dict(
                self.emu, DEP, self.workdir,
                sampling={"mode": "inline", "interval": "P1D", "day_length": f"PT{DAY_SECONDS:g}S", "margin_days": 1})
            self._trigger()
        except BaseException:
            self.stop()
            raise

    def _trigger(self) -> None:
        from prefect.deployments import run_deployment

        with api_settings(self.server.api_url):
            started = time.monotonic()
            self.flow_run = run_deployment("reclaim-storage/monthly", parameters={"config": self.config},
                                           timeout=180, poll_interval=1)
            self.seconds = time.monotonic() - started
        self.truth_after = self.emu.truth()

    def diagnostics(self) -> str:
        parts = [("prefect server log tail", self.server.child.output(3000))]
        if self.worker is not None:
            parts.append(("worker log tail", self.worker.output(6000)))
        if self.emu is not None:
            parts.append(("emulator log tail", self.emu.log_tail(2000)))
        return tails(*parts)

    def stop(self) -> None:
        if self.worker is not None:
            self.worker.stop()
        if self.emu is not None:
            self.emu.__exit__(None, None, None)
        shutil.rmtree(self.workdir, ignore_errors=True)
