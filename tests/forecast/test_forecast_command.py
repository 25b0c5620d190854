"""``acr-gc forecast --keep 5 --keep 10 --keep 20`` on the demo: one row per variant, each equal
to what a full plan (the plan flow) gives when the instance's rules really keep N tags."""

from __future__ import annotations

import copy
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from acr_gc.demo import demo_config, demo_credentials
from acr_gc.emulator.dataset import BUNDLED_DEMO

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
KEEPS = (5, 10, 20)


def demo_with_keep(n: int | None) -> dict:
    data = json.loads(BUNDLED_DEMO.read_text(encoding="utf-8"))
    if n is not None:
        data = copy.deepcopy(data)
        for rule in data["instances"][0]["lifecycle_rules"]:
            rule["retention_tag_count"] = n
    return data


def test_forecast_command_rows_equal_full_plans(emulator, prefect_api_url, tmp_path, monkeypatch):
    from acr_gc.cloud import calls
    from acr_gc.cloud.credentials import reset_chain
    from acr_gc.flows.plan import plan_instance

    emulator.load(demo_with_keep(None))
    config = demo_config(emulator.acr_endpoint, emulator.oss_endpoint, tmp_path / "out", emulator.registry_endpoint)
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(config.model_dump(mode="json")), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALIBABA_CLOUD_", "PREFECT_API_"))}
    env.update(demo_credentials(), PREFECT_API_URL=prefect_api_url, PYTHONPATH=str(ROOT), COLUMNS="200")
    args = [sys.executable, "-m", "acr_gc.cli", "forecast", "--config", str(config_path)]
    for n in KEEPS:
        args += ["--keep", str(n)]
    done = subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    folder = Path(done.stdout.strip().splitlines()[-1])
    assert (folder / "forecast.png").stat().st_size > 0
    with open(folder / "forecast.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["variant"] for r in rows] == ["current rules"] + [f"keep {n}" for n in KEEPS]

    for name, value in demo_credentials().items():
        monkeypatch.setenv(name, value)
    reset_chain()
    for row, n in zip(rows, (None, *KEEPS)):
        emulator.load(demo_with_keep(n))
        calls.reset_limiters()
        plan = plan_instance(config).result
        assert plan.expected.is_upper_bound is False
        assert int(row["bytes_freed"]) == plan.summary["bytes_expected"], row["variant"]
        assert int(row["bytes_freed_max"]) == plan.summary["bytes_expected_max"], row["variant"]
        assert int(row["tags_deleted"]) == plan.summary["tags_expired"], row["variant"]
        assert int(row["unregenerable_tags"]) == plan.summary["tags_unregenerable"], row["variant"]
    # a stricter rule never frees less
    freed = [int(r["bytes_freed"]) for r in rows[1:]]
    assert freed == sorted(freed, reverse=True)
