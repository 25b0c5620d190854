"""Emulator figures: ListRepoTag throughput and memory with a 100,000-tag dataset.

Starts the emulator on a generated instance (1,000 repositories x 100 tags), measures the
emulator process's resident memory once loaded, then drives ListRepoTag (PageSize 100)
through the real ACR SDK client from a few threads for a fixed time, and prints JSON.

    .venv/bin/python benchmarks/emulator.py [--repos 1000] [--tags-per-repo 100] [--seconds 8] [--threads 4]
"""

from __future__ import annotations

import argparse
import json
import threading
import time

import psutil
from alibabacloud_cr20181201 import models
from alibabacloud_cr20181201.client import Client
from alibabacloud_tea_openapi.utils_models import Config
from darabonba.runtime import RuntimeOptions

from acr_gc.emulator.generator import generate
from acr_gc.emulator.process import EmulatorProcess


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repos", type=int, default=1000)
    parser.add_argument("--tags-per-repo", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()

    dataset = generate(args.repos, args.tags_per_repo, seed=1)
    credential = dataset["credentials"][0]
    instance_id = dataset["instances"][0]["instance_id"]
    started = time.monotonic()
    with EmulatorProcess(dataset, startup_timeout=120) as emulator:
        ready_s = time.monotonic() - started
        rss_mb = psutil.Process(emulator.proc.pid).memory_info().rss / 2**20
        tags_loaded = sum(len(v) for v in emulator.truth()["instances"][instance_id]["tags"].values())

        def client() -> Client:
            return Client(Config(access_key_id=credential["access_key_id"],
                                 access_key_secret=credential["access_key_secret"],
                                 endpoint=emulator.acr_endpoint, protocol="http", region_id="cn-hangzhou"))

        repo_ids = [r.repo_id for r in client().list_repository(
            models.ListRepositoryRequest(instance_id=instance_id, page_no=1, page_size=100)).body.repositories]
        counts = [0] * args.threads
        deadline = time.monotonic() + args.seconds

        def drive(slot: int) -> None:
            sdk, runtime, i = client(), RuntimeOptions(), slot
            while time.monotonic() < deadline:
                request = models.ListRepoTagRequest(instance_id=instance_id, repo_id=repo_ids[i % len(repo_ids)],
                                                    page_no=1, page_size=100)
                body = sdk.list_repo_tag_with_options(request, runtime).body
                assert len(body.images) == min(100, args.tags_per_repo)
                counts[slot] += 1
                i += args.threads

        threads = [threading.Thread(target=drive, args=(n,)) for n in range(args.threads)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.monotonic() - t0
        rss_after_mb = psutil.Process(emulator.proc.pid).memory_info().rss / 2**20
    print(json.dumps({
        "tags_loaded": tags_loaded,
        "ready_s": round(ready_s, 2),
        "emulator_rss_mb_loaded": round(rss_mb, 1),
        "emulator_rss_mb_after_load_test": round(rss_after_mb, 1),
        "list_repo_tag_page_size": 100,
        "client_threads": args.threads,
        "requests": sum(counts),
        "requests_per_s": round(sum(counts) / wall, 1),
        "note": "client and emulator share the machine's 2 cores",
    }, indent=2))


if __name__ == "__main__":
    main()
