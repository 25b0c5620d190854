"""Benchmark: the exact forecast against what GC measurably frees, and what the forecast costs.

    .venv/bin/python benchmarks/forecast.py [--dataset demo | --repos 1000 --tags-per-repo 100]
                                            [--concurrency 16] [--qps 1000]

Without Prefect (the read paths the tasks wrap, in this process), against a fresh emulator:

1. plan: inventory (ListRepository, ListRepoTag, ListArtifactLifecycleRule) + the retention
   plan — its calls and wall time are the yardstick;
2. forecast, first run (empty manifest cache): manifests through the registry API (token,
   challenge, GetManifest per unseen digest, index children), the bucket's blob listing,
   the mark and sweep — extra calls (from ``calls.stats()`` and the emulator's own count of
   manifest fetches) and wall time;
3. forecast, cached run (same ledger): the same, now from the cache;
4. GC (the emulator's task) and the bucket's live bytes before and after (emulator ground
   truth): forecast error = (measured − (forecast + already unreferenced)) / that.
   The measured drop also holds the deleted tags' link objects (71 bytes each): reported
   apart, not hidden in the error;
5. peak memory: tracemalloc's peak over the forecast computation, and the process's RSS peak.

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", default=None, help="'demo' or a dataset file (default: generated)")
    parser.add_argument("--repos", type=int, default=1000)
    parser.add_argument("--tags-per-repo", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--qps", type=float, default=1000)
    args = parser.parse_args()

    from acr_gc import rules
    from acr_gc.cloud import calls
    from acr_gc.cloud.acr import AcrClient
    from acr_gc.cloud.credentials import from_keys
    from acr_gc.cloud.oss import OssClient
    from acr_gc.cloud.registry import RegistryClient
    from acr_gc.config import Config
    from acr_gc.emulator.dataset import BUNDLED_DEMO
    from acr_gc.emulator.process import EmulatorProcess
    from acr_gc.ledger.store import Ledger
    from acr_gc.rules.forecast import forecast, unreferenced_before
    from acr_gc.tasks import inventory as inv
    from acr_gc.tasks.forecast import read_graph
    from emulator_call import call_gc_action, make_acr_client  # noqa: F401  (benchmarks/ on sys.path)

    work = Path(tempfile.mkdtemp(prefix="acr-gc-bench-forecast-"))
    if args.dataset == "demo":
        data = json.loads(BUNDLED_DEMO.read_text(encoding="utf-8"))
        label = "demo"
    elif args.dataset:
        data = json.loads(Path(args.dataset).read_text(encoding="utf-8"))
        label = args.dataset
    else:
        from acr_gc.emulator.generator import generate

        data = generate(args.repos, args.tags_per_repo, seed=0)
        label = f"generated {args.repos} x {args.tags_per_repo}"
    dataset_path = work / "dataset.json"
    dataset_path.write_text(json.dumps(data), encoding="utf-8")
    inst = data["instances"][0]
    cred = data["credentials"][0]
    del data

    with EmulatorProcess(dataset_path, gc_tags_per_second=1_000_000) as emu:
        config = Config.model_validate({
            "target": {"instance_id": inst["instance_id"], "bucket": inst["bucket"], "acr_endpoint": emu.acr_endpoint,
                       "oss_endpoint": emu.oss_endpoint, "registry_endpoint": emu.registry_endpoint},
            "api": {"qps": args.qps, "concurrency": args.concurrency, "retries": 6},
            "ledger": {"url": f"sqlite:///{work / 'ledger.db'}"},
        })
        creds = from_keys(cred["access_key_id"], cred["access_key_secret"])
        acr = AcrClient(config.target, config.api, credentials=creds)
        oss = OssClient(config.target, config.api, credentials=creds)
        registry = RegistryClient(config.target, config.api, acr=acr)
        ledger = Ledger(config.ledger.url)

        calls.reset_stats()
        t0 = time.perf_counter()
        tags = inv.fetch_tags(acr, inv.fetch_repositories(acr), config.api.concurrency)
        planned = rules.plan(tags, inv.fetch_rules(acr))
        plan_s = time.perf_counter() - t0
        plan_calls = calls.stats().calls

        def run_forecast():
            calls.reset_stats()
            fetches = emu.registry_stats()["manifest_fetches"]
            t = time.perf_counter()
            graph = read_graph(config, planned, ledger, registry)
            objects = oss.list_objects(prefix="docker/registry/v2/blobs/")
            import pandas as pd

            frame = pd.DataFrame({"key": [o.key for o in objects], "size": [o.size for o in objects]})
            tracemalloc.start()
            outcome = forecast(planned, graph.manifests, planned["expired"].to_numpy(dtype=bool))
            unreferenced, _ = unreferenced_before(frame, planned, graph.manifests)
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            stats = calls.stats()
            return {
                "wall_s": round(time.perf_counter() - t, 2),
                "calls": stats.calls,
                "calls_by_action": stats.by_action,
                "manifests_fetched": emu.registry_stats()["manifest_fetches"] - fetches,
                "manifests_cached": graph.cached,
                "unreadable": len(graph.unreadable),
                "compute_peak_mib": round(peak / 2**20, 1),
            }, outcome, unreferenced

        first, outcome, unreferenced = run_forecast()
        cached, _, _ = run_forecast()

        before = emu.truth()["buckets"][inst["bucket"]]["live_bytes"]
        client = make_acr_client(emu.acr_endpoint, cred["access_key_id"], cred["access_key_secret"])
        task_id = call_gc_action(client, "CreateGarbageCollectionTask", InstanceId=inst["instance_id"])["TaskId"]
        while call_gc_action(client, "GetGarbageCollectionTask", InstanceId=inst["instance_id"],
                             TaskId=task_id)["State"] in ("PENDING", "RUNNING"):
            time.sleep(0.2)
        truth = emu.truth()
        measured = before - truth["buckets"][inst["bucket"]]["live_bytes"]
        remaining = sum(len(v) for v in truth["instances"][inst["instance_id"]]["tags"].values())
        deleted_tags = len(planned) - remaining
        links = sum(len(d) for d in planned["digest"][planned["expired"]])
        predicted = outcome.bytes + unreferenced
        print(json.dumps({
            "dataset": label,
            "tags": int(len(planned)),
            "tags_expired_plan": int(planned["expired"].sum()),
            "tags_deleted_by_gc": int(deleted_tags),
            "plan": {"wall_s": round(plan_s, 2), "calls": plan_calls},
            "forecast_first_run": first,
            "forecast_cached_run": cached,
            "forecast_bytes": outcome.bytes,
            "unreferenced_before_bytes": unreferenced,
            "is_upper_bound": outcome.is_upper_bound,
            "measured_bytes": measured,
            "tag_link_bytes": links,
            "error_pct": round((measured - predicted) * 100 / predicted, 4) if predicted else None,
            "error_pct_without_links": round((measured - links - predicted) * 100 / predicted, 4) if predicted else None,
            "process_peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        }, indent=2))
        registry.close()


if __name__ == "__main__":
    main()
