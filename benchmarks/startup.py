"""`acr-gc plan` end to end as an operator runs it: start-up included (issue 16).

    .venv/bin/python benchmarks/startup.py [--repos 600] [--tags-per-repo 100] [--latency-ms 50] [--qps 100]

For a tiny dataset (one repository of 10 tags) and the generated REPOS × TAGS dataset, runs
`acr-gc plan --config …` as a subprocess (no PREFECT_API_URL, so the command brings its
own temporary Prefect server) three ways:

- cold: a new, empty PREFECT_HOME (the server creates its database first);
- warm: the same PREFECT_HOME again (what every later command on the machine meets);
- reused: PREFECT_API_URL pointing at a Prefect server that is already up.

and prints one JSON object: per case, `first_call_s` (process start → the first byte of
the first ACR request, seen by a TCP relay in front of the emulator, independent of the
code under test), `wall_s` (process start → exit), the ACR calls the command made (the
emulator's own count), `bound_s` = calls / qps (the quota bound) and `ratio_to_bound` =
wall_s / bound_s (issue 16's target: ≤ 1.3 on the 600 × 100 dataset).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from acr_gc.emulator.generator import CREDENTIALS  # noqa: E402
from acr_gc.emulator.process import EmulatorProcess  # noqa: E402


class FirstByteRelay:
    """A TCP relay on a free loopback port that notes when the first request byte arrives."""

    def __init__(self, upstream: str) -> None:
        host, port = upstream.rsplit(":", 1)
        self.upstream = (host, int(port))
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.endpoint = f"127.0.0.1:{self.listener.getsockname()[1]}"
        self.first_byte: float | None = None
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            client, _ = self.listener.accept()
            server = socket.create_connection(self.upstream)
            threading.Thread(target=self._pipe, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client, False), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, requests: bool) -> None:
        try:
            while data := source.recv(65536):
                if requests and self.first_byte is None:
                    self.first_byte = time.monotonic()
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                try:
                    end.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


def tiny_dataset() -> dict:
    layer = "sha256:" + "1" * 64
    tags = [{"tag": f"t{i}", "digest": "sha256:" + f"{i:064x}", "updated": f"2026-10-{i + 1:02d}T00:00:00Z",
             "layers": [layer]} for i in range(10)]
    return {
        "clock": "2026-11-01T00:00:00Z", "credentials": CREDENTIALS, "layers": {layer: 1000},
        "instances": [{"instance_id": "cri-gen", "name": "tiny", "region": "cn-hangzhou", "gc_whitelisted": True,
                       "bucket": "cri-gen-storage", "namespaces": ["ns"],
                       "repositories": [{"namespace": "ns", "name": "app", "source_code": None, "build_rules": [],
                                         "sync_rules": [], "tags": tags}],
                       "charts": [], "lifecycle_rules": []}],
        "buckets": [{"name": "cri-gen-storage", "versioning": None, "lifecycle": [], "policy": None,
                     "extra_objects": []}],
    }


def one_plan(emu: EmulatorProcess, work: Path, home: Path, qps: float, api_url: str | None) -> dict:
    relay = FirstByteRelay(emu.acr_endpoint)
    config = work / "config.yaml"
    config.write_text(
        "target:\n  instance_id: cri-gen\n  bucket: cri-gen-storage\n"
        f"  acr_endpoint: {relay.endpoint}\n  oss_endpoint: {emu.oss_endpoint}\n  credentials: chain\n"
        "freeze:\n  principals: ['acs:ram::1234567890:user/ci-pusher']\n"
        f"report:\n  out_dir: {work / 'out'}\nledger:\n  url: sqlite:///{work / 'ledger.db'}\n"
        f"api:\n  qps: {qps}\n  concurrency: 16\n  retries: 6\n",
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALIBABA_CLOUD_", "PREFECT_"))}
    env.update(PREFECT_HOME=str(home), ALIBABA_CLOUD_ACCESS_KEY_ID=CREDENTIALS[0]["access_key_id"],
               ALIBABA_CLOUD_ACCESS_KEY_SECRET=CREDENTIALS[0]["access_key_secret"])
    if api_url:
        env["PREFECT_API_URL"] = api_url
    before = emu.truth()["request_counts"].get("acr", 0)
    acr_gc = Path(sys.executable).parent / "acr-gc"
    started = time.monotonic()
    done = subprocess.run([str(acr_gc), "plan", "--config", str(config)], env=env, capture_output=True, text=True)
    wall = time.monotonic() - started
    if done.returncode not in (0, 3):
        raise SystemExit(f"acr-gc plan failed ({done.returncode}): {done.stderr[-2000:]}")
    calls = emu.truth()["request_counts"].get("acr", 0) - before
    bound = calls / qps
    return {"first_call_s": round(relay.first_byte - started, 2) if relay.first_byte else None,
            "wall_s": round(wall, 2), "acr_calls": calls, "bound_s": round(bound, 2),
            "ratio_to_bound": round(wall / bound, 2),
            "errors_printed": sum("ERROR" in line or "Traceback" in line
                                  for line in (done.stdout + done.stderr).splitlines())}


def cases(dataset: Path, qps: float, latency_ms: float, work: Path) -> dict:
    results = {}
    home = work / "prefect-home"
    with EmulatorProcess(dataset, latency_ms=latency_ms, qps=qps, startup_timeout=180) as emu:
        results["cold"] = one_plan(emu, work, home, qps, None)
        results["warm"] = one_plan(emu, work, home, qps, None)
        server_home = work / "server-home"
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")},
               "PREFECT_HOME": str(server_home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        prefect = Path(sys.executable).parent / "prefect"
        server = subprocess.Popen([str(prefect), "server", "start", "--host", "127.0.0.1", "--port", str(port),
                                   "--no-services"], env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        try:
            import urllib.request

            api = f"http://127.0.0.1:{port}/api"
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline:
                try:
                    with urllib.request.urlopen(f"{api}/health", timeout=1):
                        break
                except OSError:
                    time.sleep(0.2)
            results["reused"] = one_plan(emu, work, home, qps, api)
        finally:
            server.terminate()
            server.wait(timeout=30)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repos", type=int, default=600)
    parser.add_argument("--tags-per-repo", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--qps", type=float, default=100)
    parser.add_argument("--latency-ms", type=float, default=50)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="acr-gc-bench-startup-"))
    try:
        tiny = work / "tiny.json"
        tiny.write_text(json.dumps(tiny_dataset()), encoding="utf-8")
        big = work / "big.json"
        with open(big, "w") as out:
            subprocess.run([sys.executable, "-m", "acr_gc.cli", "emulator", "generate", "--repos", str(args.repos),
                            "--tags-per-repo", str(args.tags_per_repo), "--seed", str(args.seed)],
                           stdout=out, check=True, cwd=ROOT)
        report = {"machine": {"cores": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2)},
                  "qps": args.qps, "latency_ms": args.latency_ms}
        for name, dataset in (("tiny", tiny), (f"{args.repos}x{args.tags_per_repo}", big)):
            (work / name).mkdir()
            report[name] = cases(dataset, args.qps, args.latency_ms, work / name)
        print(json.dumps(report, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
