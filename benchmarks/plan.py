"""Benchmark: `acr-gc plan` on 1,000 repositories x 100 tags against a rate-limited emulator.

    .venv/bin/python benchmarks/plan.py [--repos 1000] [--tags-per-repo 100] [--qps 100]
                                        [--latency-ms 20] [--concurrency 8] [--skip-naive]

What it does, in one process (the plan's process, whose peak RSS is reported):

1. starts a Prefect server (``prefect_test_harness``: temporary SQLite, a subprocess) —
   NOT timed: it is infrastructure, not the plan's cost;
2. writes the dataset ``acr-gc emulator generate`` makes (in a subprocess, so the 100,000
   tag dataset never sits in this process's memory) and starts the emulator with
   ``--latency-ms 20 --qps 100`` — not timed;
3. times the real code path: ``load_config`` + ``preflight`` + the ``plan_instance`` flow,
   in-process, with ``api.qps`` = the emulator's quota;
4. times the naive loop a shell script would run with the raw SDK client: ListRepository
   pages, then ListRepoTag pages repository by repository, one call at a time (on a
   throttling error it sleeps 1 s and repeats the call, as a careful script would);
5. prints one JSON object.

Call counts come from two independent places: the adapters' counters
(``acr_gc.cloud.calls.stats()``, per action and per instance) and the emulator's own
``request_counts`` (every HTTP request it received, throttled ones included).

``min_calls`` = repository pages + tag pages of the target instance: what any complete
inventory must read. ``bound_s`` = min_calls / qps. ``ratio_to_bound`` = wall_s / bound_s
over the whole plan (preflight, inventory, the gate's extra reads and the Prefect
overhead); ``inventory_ratio_to_bound`` = the inventory's own wall time (flow start to the
last tag batch's end, from the Prefect task runs) / bound_s. ``plan_retention_s`` is the
retention task (every reading of the lifecycle rules, DESIGN section 3) and
``plan_retention_pct_of_wall`` its share of the whole plan: an upper bound on what
planning under eight readings instead of one costs.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# Prefect reads its settings on import: a private home, no analytics, never an operator's server.
_HOME = tempfile.mkdtemp(prefix="acr-gc-bench-prefect-")
os.environ["PREFECT_HOME"] = _HOME
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["PREFECT_LOGGING_LEVEL"] = "WARNING"
os.environ.pop("PREFECT_API_URL", None)

INVENTORY_ACTIONS = ("ACR:ListRepository", "ACR:ListRepoTag", "ACR:ListArtifactLifecycleRule",
                     "ACR:ListChartRepository", "ACR:ListChartNamespace", "ACR:ListNamespace")
GATE_ACTIONS = ("ACR:ListRepoSyncRule", "ACR:GetRepoSourceCodeRepo", "ACR:ListRepoBuildRule")


def peak_rss_mb(pid: int | None = None) -> float:
    """Peak resident set size: of this process (getrusage), or of another (VmHWM)."""
    if pid is None:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def naive_inventory(emu, instance_id: str, access_key_id: str, secret: str) -> dict:
    """ListRepository pages, then ListRepoTag pages repo by repo: one call at a time."""
    from alibabacloud_cr20181201 import models as m
    from alibabacloud_cr20181201.client import Client
    from alibabacloud_tea_openapi import models as open_api_models
    from darabonba.runtime import RuntimeOptions

    client = Client(open_api_models.Config(access_key_id=access_key_id, access_key_secret=secret,
                                           endpoint=emu.acr_endpoint, protocol="http", region_id="cn-hangzhou"))
    runtime = RuntimeOptions(autoretry=False, read_timeout=30_000, connect_timeout=10_000)
    calls = throttled = 0

    def call(fn):
        nonlocal calls, throttled
        while True:
            calls += 1
            try:
                return fn().body.to_map()
            except Exception as exc:  # noqa: BLE001 - a script retries throttling only
                if "Throttling" in str(exc):
                    throttled += 1
                    time.sleep(1.0)
                    continue
                raise

    repos: list[str] = []
    page = 1
    while True:
        body = call(lambda: client.list_repository_with_options(
            m.ListRepositoryRequest(instance_id=instance_id, page_no=page, page_size=100), runtime))
        repos += [r["RepoId"] for r in body.get("Repositories") or []]
        if len(repos) >= int(body["TotalCount"]) or not body.get("Repositories"):
            break
        page += 1
    tags = 0
    for repo_id in repos:
        page, seen = 1, 0
        while True:
            body = call(lambda: client.list_repo_tag_with_options(
                m.ListRepoTagRequest(instance_id=instance_id, repo_id=repo_id, page_no=page, page_size=100), runtime))
            items = body.get("Images") or []
            seen += len(items)
            if seen >= int(body["TotalCount"]) or not items:
                break
            page += 1
        tags += seen
    return {"calls": calls, "throttled": throttled, "repositories": len(repos), "tags": tags,
            "_client": client, "_call": call, "_runtime": runtime}


def naive_gate_reads(naive: dict, instance_id: str, repo_ids: list[str]) -> int:
    """The gate's build reads, one at a time: the sync rules, then for each repository that
    needs them its source-code binding and (when bound) its build rules."""
    from alibabacloud_cr20181201 import models as m

    client, call, runtime = naive["_client"], naive["_call"], naive["_runtime"]
    naive_calls = 0
    call(lambda: client.list_repo_sync_rule_with_options(
        m.ListRepoSyncRuleRequest(instance_id=instance_id, page_no=1, page_size=100), runtime))
    naive_calls += 1
    for repo_id in repo_ids:
        try:
            body = call(lambda: client.get_repo_source_code_repo_with_options(
                m.GetRepoSourceCodeRepoRequest(instance_id=instance_id, repo_id=repo_id), runtime))
        except Exception:  # noqa: BLE001 - no binding
            body = {}
        naive_calls += 1
        if body.get("CodeRepoName") or body.get("CodeRepoType"):
            call(lambda: client.list_repo_build_rule_with_options(
                m.ListRepoBuildRuleRequest(instance_id=instance_id, repo_id=repo_id, page_no=1, page_size=100),
                runtime))
            naive_calls += 1
    return naive_calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repos", type=int, default=1000)
    parser.add_argument("--tags-per-repo", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--qps", type=float, default=100)
    parser.add_argument("--latency-ms", type=float, default=20)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--skip-naive", action="store_true")
    args = parser.parse_args()

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    from acr_gc.cloud import calls, credentials
    from acr_gc.config import load_config
    from acr_gc.emulator.generator import CREDENTIALS
    from acr_gc.emulator.process import EmulatorProcess
    from acr_gc.flows.plan import plan_instance
    from acr_gc.tasks.preflight import preflight

    work = Path(tempfile.mkdtemp(prefix="acr-gc-bench-plan-"))
    dataset_path = work / "dataset.json"
    t = time.perf_counter()
    with open(dataset_path, "w") as out:
        subprocess.run([sys.executable, "-m", "acr_gc.cli", "emulator", "generate", "--repos", str(args.repos),
                        "--tags-per-repo", str(args.tags_per_repo), "--seed", str(args.seed)],
                       stdout=out, check=True, cwd=ROOT)
    generate_s = time.perf_counter() - t

    ak, secret = CREDENTIALS[0]["access_key_id"], CREDENTIALS[0]["access_key_secret"]
    os.environ["ALIBABA_CLOUD_ACCESS_KEY_ID"] = ak
    os.environ["ALIBABA_CLOUD_ACCESS_KEY_SECRET"] = secret
    credentials.reset_chain()

    t = time.perf_counter()
    with prefect_test_harness(server_startup_timeout=120):
        prefect_start_s = time.perf_counter() - t
        t = time.perf_counter()
        with EmulatorProcess(dataset_path, latency_ms=args.latency_ms, qps=args.qps, startup_timeout=120) as emu:
            emulator_start_s = time.perf_counter() - t
            instance_id, bucket = "cri-gen", "cri-gen-storage"
            config_path = work / "config.yaml"
            config_path.write_text(
                "target:\n"
                f"  instance_id: {instance_id}\n  bucket: {bucket}\n"
                f"  acr_endpoint: {emu.acr_endpoint}\n  oss_endpoint: {emu.oss_endpoint}\n"
                "  credentials: chain\n"
                "freeze:\n  principals: ['acs:ram::1234567890:user/ci-pusher']\n"
                f"report:\n  out_dir: {work / 'out'}\n"
                f"api:\n  qps: {args.qps}\n  concurrency: {args.concurrency}\n  retries: 6\n",
                encoding="utf-8",
            )
            truth0 = emu.truth()["request_counts"]
            calls.reset_stats()
            rss_before = peak_rss_mb()

            # ---- the plan: preflight + the flow, timed -----------------------------------
            t0 = time.perf_counter()
            config = load_config(config_path)
            preflight(config)
            t_flow = time.perf_counter()
            state = plan_instance(config, return_state=True)
            outcome = state.result()
            wall_s = time.perf_counter() - t0
            plan_peak_rss = peak_rss_mb()
            stats = calls.stats()
            truth1 = emu.truth()

            # The inventory's own wall time: from the flow's start to the end of its last
            # tag batch, read back from the Prefect task runs.
            with get_client(sync_client=True) as client:
                runs = client.read_task_runs(flow_run_filter=FlowRunFilter(
                    id=FlowRunFilterId(any_=[state.state_details.flow_run_id])))
                flow_run = client.read_flow_run(state.state_details.flow_run_id)
            task_runs = len(runs)
            steps = {}
            for run in runs:
                name = run.name.rsplit("-", 1)[0]
                begin, end = run.start_time, run.end_time
                lo, hi = steps.get(name, (begin, end))
                steps[name] = (min(lo, begin), max(hi, end))
            inv_end = max(steps[n][1] for n in ("list-repositories", "list-tags", "list-lifecycle-rules",
                                                "list-charts") if n in steps)
            inventory_wall_s = (inv_end - flow_run.start_time).total_seconds()
            gate_wall_s = (steps["verify-regenerable"][1] - steps["verify-regenerable"][0]).total_seconds()
            # the retention step: all eight readings of the rules (issue 11), their masks included
            retention_s = (steps["plan-retention"][1] - steps["plan-retention"][0]).total_seconds()
            preflight_s = t_flow - t0

            # ---- the naive loop ---------------------------------------------------------
            naive = None
            if not args.skip_naive:
                before_naive = emu.truth()["request_counts"].get("acr", 0)
                t = time.perf_counter()
                naive = naive_inventory(emu, instance_id, ak, secret)
                naive_inventory_wall_s = time.perf_counter() - t
                # The same build reads the plan's gate made: repositories with expired tags
                # that neither an alias nor a replica settles.
                v = outcome.result.verdicts
                open_ = v[v["expired"] & ~v["regenerable_by"].isin(["alias", "replica"])]
                need = sorted(set(open_["repo_id"]))
                naive["gate_calls"] = naive_gate_reads(naive, instance_id, need)
                naive_wall_s = time.perf_counter() - t
                naive["inventory_wall_s"] = round(naive_inventory_wall_s, 2)
                naive["emulator_requests"] = emu.truth()["request_counts"].get("acr", 0) - before_naive
                for key in ("_client", "_call", "_runtime"):
                    naive.pop(key)
                naive["wall_s"] = round(naive_wall_s, 2)
            emulator_peak_rss = peak_rss_mb(emu.proc.pid)

    by_action = stats.by_action
    repos_n, tags_n = args.repos, args.repos * args.tags_per_repo
    repository_pages = math.ceil(repos_n / 100)
    tag_pages = repos_n * max(1, math.ceil(args.tags_per_repo / 100))
    min_calls = repository_pages + tag_pages
    bound_s = min_calls / args.qps
    # Calls on other instances are the gate's replica reads (sync targets); on the target
    # instance, inventory vs gate by action; GetInstance / GetBucketInfo / one rule listing
    # are the preflight.
    replica_calls = sum(v for k, v in stats.by_scope.items() if k not in (instance_id, bucket))
    target_list_calls = by_action.get("ACR:ListRepository", 0) + by_action.get("ACR:ListRepoTag", 0) - replica_calls
    inventory_calls = target_list_calls + sum(by_action.get(a, 0) for a in INVENTORY_ACTIONS[2:]) - 1
    gate_calls = sum(by_action.get(a, 0) for a in GATE_ACTIONS) + replica_calls
    preflight_calls = by_action.get("ACR:GetInstance", 0) + by_action.get("OSS:GetBucketInfo", 0) + 1
    emulator_requests = {k: truth1["request_counts"].get(k, 0) - truth0.get(k, 0) for k in ("acr", "oss")}
    throttled_by_emulator = {k: v for k, v in truth1.get("fault_counts", {}).items() if "throttled" in k}

    report = {
        "dataset": {"repos": repos_n, "tags": tags_n, "seed": args.seed, "latency_ms": args.latency_ms,
                    "qps": args.qps},
        "api": {"qps": args.qps, "concurrency": args.concurrency},
        "summary_plan": outcome.result.summary,
        "gate_passed": bool(outcome.result.gate.passed),
        "api_calls": stats.calls,
        "api_attempts": stats.attempts,
        "emulator_requests": emulator_requests,
        "calls_by_action": dict(sorted(by_action.items())),
        "inventory_calls": inventory_calls,
        "gate_calls": gate_calls,
        "preflight_calls": preflight_calls,
        "min_calls": min_calls,
        "wall_s": round(wall_s, 2),
        "preflight_s": round(preflight_s, 2),
        "inventory_wall_s": round(inventory_wall_s, 2),
        "gate_wall_s": round(gate_wall_s, 2),
        "plan_retention_s": round(retention_s, 3),
        "plan_retention_pct_of_wall": round(100 * retention_s / wall_s, 2),
        "bound_s": round(bound_s, 2),
        "ratio_to_bound": round(wall_s / bound_s, 3),
        "inventory_ratio_to_bound": round(inventory_wall_s / bound_s, 3),
        "calls_ratio_to_min": round(stats.calls / min_calls, 3),
        "all_calls_bound_s": round(stats.calls / args.qps, 2),
        "ratio_to_all_calls_bound": round(wall_s / (stats.calls / args.qps), 3),
        "naive_wall_s": naive["wall_s"] if naive else None,
        "naive_inventory_wall_s": naive["inventory_wall_s"] if naive else None,
        "naive_calls": naive["calls"] if naive else None,
        "naive_gate_calls": naive["gate_calls"] if naive else None,
        "naive_throttled": naive["throttled"] if naive else None,
        "speedup_vs_naive": round(naive["wall_s"] / wall_s, 2) if naive else None,
        "inventory_speedup_vs_naive": round(naive["inventory_wall_s"] / inventory_wall_s, 2) if naive else None,
        "throttled_retries": stats.throttled_retries,
        "throttled_by_emulator": throttled_by_emulator,
        "task_runs": task_runs,
        "peak_rss_mb": round(plan_peak_rss, 1),
        "rss_before_plan_mb": round(rss_before, 1),
        "emulator_peak_rss_mb": round(emulator_peak_rss, 1),
        "not_timed_s": {"generate": round(generate_s, 2), "prefect_server_start": round(prefect_start_s, 2),
                        "emulator_start": round(emulator_start_s, 2)},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
