"""Every command starts on a busy machine (issue 16): `acr-gc demo`, `plan` and `run`, ten
times each, as an operator runs them — subprocesses with no ``PREFECT_API_URL``, so each
starts (and must stop) its own temporary Prefect server — while two CPU-bound processes
that this test starts keep both cores busy.

Each succeeds (exit 0, the run folder as its last line), prints no ``ERROR`` line and no
traceback, and leaves no Prefect server running behind it. The commands run in four lanes
side by side (two of demos, one of plans, one of runs: the runs share one instance and its
lock, so they take turns), which loads the machine more than the issue asks; each lane keeps
one Prefect home, as one operator's shell would.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest
import yaml

from acr_gc.demo import demo_config, demo_credentials
from acr_gc.emulator.dataset import BUNDLED_DEMO
from emulator_kit import new_emulator

# 30 commands beside two CPU hogs: minutes, more on a machine busy with other work too
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

ROOT = Path(__file__).resolve().parents[2]
ROUNDS = 10  # of each command: the demos in two lanes of five
SERVER_APP = "prefect.server.api.server:create_app"


def _command() -> list[str]:
    script = Path(sys.executable).parent / "acr-gc"
    return [str(script)] if script.exists() else [shutil.which("acr-gc") or "acr-gc"]


def _hog() -> subprocess.Popen:
    """Burns a core until this test kills it, however long the commands take: a fixed
    lifetime (900 s) came within 25 s of running out under the last commands of a slow
    suite run. If the test process dies first, the hog sees its parent change and stops."""
    code = ("import os, time\nparent = os.getppid()\nwhile os.getppid() == parent:\n"
            "    end = time.monotonic() + 0.1\n    while time.monotonic() < end:\n        pass\n")
    return subprocess.Popen([sys.executable, "-c", code])


def _servers_of(home: Path) -> list[psutil.Process]:
    """Prefect servers started with this Prefect home (their environment says so)."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        try:
            if SERVER_APP in " ".join(process.info["cmdline"] or []) and \
                    process.environ().get("PREFECT_HOME") == str(home):
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def _lane(name: str, args: list[str], rounds: int, home: Path, env: dict[str, str]) -> list[str]:
    """Run one command `rounds` times in a row; return what went wrong (empty: all well)."""
    problems = []
    for round_no in range(rounds):
        started = time.monotonic()
        done = subprocess.run([*_command(), *args], env={**env, "PREFECT_HOME": str(home)}, cwd=ROOT,
                              capture_output=True, text=True, timeout=600)
        wall = time.monotonic() - started
        print(f"{name} #{round_no + 1}: exit {done.returncode} in {wall:.1f} s")
        output = done.stdout + done.stderr
        last = (done.stdout.strip().splitlines() or [""])[-1]
        if done.returncode != 0:
            kept = home.parent / f"{name}-{round_no + 1}.output.txt"  # the whole story, cause first
            kept.write_text(output, encoding="utf-8")
            problems.append(f"{name} #{round_no + 1} exit {done.returncode} (all of it: {kept}): {output[-1500:]}")
        elif not Path(last).is_dir():
            problems.append(f"{name} #{round_no + 1}: last line is not the run folder: {last!r}")
        bad = [line for line in output.splitlines() if "ERROR" in line or "Traceback" in line]
        if bad:
            problems.append(f"{name} #{round_no + 1} printed: {bad[:3]}")
        left = _servers_of(home)
        if left:
            problems.append(f"{name} #{round_no + 1} left Prefect servers running: {[p.pid for p in left]}")
            for process in left:
                process.kill()
    return problems


def test_demo_plan_and_run_start_every_time_beside_two_cpu_hogs(tmp_path):
    with new_emulator(BUNDLED_DEMO, gc_tags_per_second=5000) as emulator:
        config = demo_config(emulator.acr_endpoint, emulator.oss_endpoint, tmp_path / "out")
        raw = config.model_dump(mode="json")
        raw["sampling"]["mode"] = "scheduled"  # `run` ends once GC is done; the demo samples inline
        configs = {}
        for lane in ("plan", "run"):
            raw["ledger"]["url"] = f"sqlite:///{tmp_path / lane / 'ledger.db'}"
            raw["report"]["out_dir"] = str(tmp_path / lane / "out")
            (tmp_path / lane).mkdir()
            configs[lane] = tmp_path / lane / "config.yaml"
            configs[lane].write_text(yaml.safe_dump(raw), encoding="utf-8")

        env = {k: v for k, v in os.environ.items() if not k.startswith(("ALIBABA_CLOUD_", "PREFECT_"))}
        env.update(demo_credentials(), COLUMNS="200")
        lanes = [
            ("demo-a", ["demo", "--out", str(tmp_path / "demo-a")], ROUNDS // 2),
            ("demo-b", ["demo", "--out", str(tmp_path / "demo-b")], ROUNDS - ROUNDS // 2),
            ("plan", ["plan", "--config", str(configs["plan"])], ROUNDS),
            ("run", ["run", "--config", str(configs["run"])], ROUNDS),
        ]
        hogs = [_hog(), _hog()]
        try:
            with ThreadPoolExecutor(len(lanes)) as pool:
                futures = [pool.submit(_lane, name, args, rounds, tmp_path / f"home-{name}", env)
                           for name, args, rounds in lanes]
                problems = [problem for future in futures for problem in future.result()]
            problems += [f"CPU hog {hog.pid} had stopped (exit {hog.returncode}) before the last command ended"
                         for hog in hogs if hog.poll() is not None]
        finally:
            for hog in hogs:
                hog.kill()
                hog.wait()
    assert problems == []
