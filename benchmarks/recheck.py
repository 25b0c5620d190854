"""Benchmark: the re-check before GC (issue 11) on 1,000 repositories x 100 tags.

    .venv/bin/python benchmarks/recheck.py [--repos 1000] [--tags-per-repo 100] [--qps 100]
                                           [--latency-ms 20] [--concurrency 8]

The re-check lists rules, repositories and tags again and plans them under every reading
(conservative), right before GC: what it adds to a run is that listing and one
``rules.plan``, nothing else (no gate reads, no forecast). Against the emulator with the
same settings as benchmarks/plan.py (``--latency-ms 20 --qps 100``), the gated plan is made
first from the same listing (not timed); then ``recheck_plan`` (its function body, no
Prefect server needed) is timed, and its calls counted by the emulator (request_counts).
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="acr-gc-bench-prefect-")
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ.pop("PREFECT_API_URL", None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repos", type=int, default=1000)
    parser.add_argument("--tags-per-repo", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--qps", type=float, default=100)
    parser.add_argument("--latency-ms", type=float, default=20)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()

    from acr_gc import rules
    from acr_gc.cloud import credentials
    from acr_gc.cloud.clients import acr_client
    from acr_gc.config import load_config
    from acr_gc.emulator.generator import CREDENTIALS
    from acr_gc.emulator.process import EmulatorProcess
    from acr_gc.tasks import inventory as inv
    from acr_gc.tasks.recheck import recheck_plan

    work = Path(tempfile.mkdtemp(prefix="acr-gc-bench-recheck-"))
    dataset_path = work / "dataset.json"
    with open(dataset_path, "w") as out:
        subprocess.run([sys.executable, "-m", "acr_gc.cli", "emulator", "generate", "--repos", str(args.repos),
                        "--tags-per-repo", str(args.tags_per_repo), "--seed", str(args.seed)],
                       stdout=out, check=True, cwd=ROOT)
    os.environ["ALIBABA_CLOUD_ACCESS_KEY_ID"] = CREDENTIALS[0]["access_key_id"]
    os.environ["ALIBABA_CLOUD_ACCESS_KEY_SECRET"] = CREDENTIALS[0]["access_key_secret"]
    credentials.reset_chain()

    with EmulatorProcess(dataset_path, latency_ms=args.latency_ms, qps=args.qps, startup_timeout=120) as emu:
        config_path = work / "config.yaml"
        config_path.write_text(
            "target:\n  instance_id: cri-gen\n  bucket: cri-gen-storage\n"
            f"  acr_endpoint: {emu.acr_endpoint}\n  oss_endpoint: {emu.oss_endpoint}\n  credentials: chain\n"
            "freeze:\n  principals: ['acs:ram::1234567890:user/ci-pusher']\n"
            f"report:\n  out_dir: {work / 'out'}\n"
            f"api:\n  qps: {args.qps}\n  concurrency: {args.concurrency}\n  retries: 6\n",
            encoding="utf-8")
        config = load_config(config_path)
        acr = acr_client(config)
        tags = inv.fetch_tags(acr, inv.fetch_repositories(acr), config.api.concurrency)
        gated = rules.plan(tags, inv.fetch_rules(acr), readings=None)  # the plan the gate passed

        before = emu.truth()["request_counts"]
        t = time.perf_counter()
        outside = recheck_plan.fn(config, gated)
        wall_s = time.perf_counter() - t
        after = emu.truth()["request_counts"]
        t = time.perf_counter()
        rules.plan(tags, inv.fetch_rules(acr), readings=None)
        plan_s = time.perf_counter() - t

    print(json.dumps({
        "repos": args.repos, "tags": int(len(tags)), "qps": args.qps, "latency_ms": args.latency_ms,
        "recheck_wall_s": round(wall_s, 2), "of_which_plan_s": round(plan_s, 2),
        "acr_calls": int(after.get("acr", 0) - before.get("acr", 0)),
        "outside_gated": int(len(outside)),
    }))


if __name__ == "__main__":
    main()
