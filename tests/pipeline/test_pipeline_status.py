"""``acr-gc status`` (issue 15 item 4) on one ledger holding three instances:

* cri-run — finished: GC done, the window closed (clock moved 6 days on), the sampler
  made the report final: COMPLETE, 7 tags deleted, one savings.csv row.
* cri-frz — an open window: GC done (30 tags deleted), sampling scheduled, window open.
* cri-nowl — killed while frozen: its run row still RUNNING, its instance lock held by a
  process that is gone, its freeze statement on the bucket (applied by the product's own
  ``freeze_bucket``, as the killed run did).

Every expected value is worked out apart from the command: tag counts by hand
(pipeline_support.py), the freeze from the emulator's truth (the bucket's policy), the
clock from the truth, window ends and reclaimed bytes from each run's summary.json.
"""

from __future__ import annotations

import json
import socket
import subprocess
import uuid
from datetime import datetime, timezone

import pytest

from pipeline_support import (
    FRZ_RETAINED,
    FRZ_TAGS,
    RUN_EXPIRED,
    cli_env,
    config_dict,
    dataset,
    run_cli,
    run_flow,
    summary_of,
    write_config,
)

pytestmark = pytest.mark.slow


def _parse(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def _killed_frozen(config: dict) -> str:
    """A run of cri-nowl killed after it froze the bucket: row, dead lock holder, freeze."""
    from acr_gc.config import Config
    from acr_gc.ledger import Ledger, Run
    from acr_gc.cloud.clients import oss_client
    from acr_gc.ledger.models import InstanceLock
    from acr_gc.tasks.freeze import freeze_bucket

    gone = subprocess.Popen(["true"])
    gone.wait()
    run_id = "20261107T000000Z-killed"
    now = datetime.now(timezone.utc)
    ledger = Ledger(config["ledger"]["url"])
    with ledger.session() as session:
        session.add(Run(run_id=run_id, instance_id="cri-nowl", bucket="cri-nowl-storage", region="cn-hangzhou",
                        state="RUNNING", started_at=now, out_dir=config["report"]["out_dir"]))
        session.add(InstanceLock(instance_id="cri-nowl", token=uuid.uuid4().hex, run_id=run_id,
                                 host=socket.gethostname(), pid=gone.pid, acquired_at=now, heartbeat_at=now))
    parsed = Config.model_validate(config)
    freeze_bucket(parsed, oss_client(parsed), ledger, run_id)
    ledger.dispose()
    return run_id


def test_status_shows_a_finished_an_open_window_and_a_killed_frozen_instance(emulator, prefect_api_url, tmp_path,
                                                                             monkeypatch):
    from acr_gc.config import Config
    from acr_gc.flows.sample import sample_storage

    emulator.load(dataset())
    endpoints = (emulator.acr_endpoint, emulator.oss_endpoint)
    run_config = config_dict(endpoints, tmp_path, "cri-run", "cri-run-storage")
    frz_config = config_dict(endpoints, tmp_path, "cri-frz", "cri-frz-storage")
    nowl_config = config_dict(endpoints, tmp_path, "cri-nowl", "cri-nowl-storage")

    state, run_folder = run_flow(run_config, monkeypatch)
    assert summary_of(run_folder)["state"] == "GC_DONE", state.message
    emulator.advance_clock(6)  # past cri-run's window (3 noncurrent days + 2 margin)
    sample_storage(Config.model_validate(run_config))
    finished = summary_of(run_folder)
    assert finished["state"] == "COMPLETE"
    state, frz_folder = run_flow(frz_config, monkeypatch)
    open_window = summary_of(frz_folder)
    assert open_window["state"] == "GC_DONE", state.message
    killed = _killed_frozen(nowl_config)

    result = run_cli(["status", "--config", str(write_config(nowl_config, tmp_path / "nowl.yaml")), "--json"],
                     cli_env(prefect_api_url))
    truth = emulator.truth()
    assert result.returncode == 3, result.stderr  # frozen, and nobody live holds cri-nowl
    shown = json.loads(result.stdout)
    clock = _parse(truth["clock"])
    assert abs((_parse(shown["now"]) - clock).total_seconds()) < 60

    def frozen_sids(bucket: str) -> list[str]:
        policy = truth["buckets"][bucket]["policy"] or {"Statement": []}
        return [s["Sid"] for s in policy["Statement"] if str(s.get("Sid", "")).startswith("AcrGcFreeze")]

    by_id = {entry["instance_id"]: entry for entry in shown["instances"]}
    assert sorted(by_id) == ["cri-frz", "cri-nowl", "cri-run"]

    run = by_id["cri-run"]
    assert run["bucket"] == "cri-run-storage"
    assert run["last_run"]["run_id"] == run_folder.name
    assert run["last_run"]["state"] == "COMPLETE"
    assert run["last_run"]["tags_deleted"] == len(RUN_EXPIRED)
    assert run["open_windows"] == []
    assert run["freeze"] == {"on": False, "sids": frozen_sids("cri-run-storage"), "read_from": "bucket",
                             "live_run": None}
    assert frozen_sids("cri-run-storage") == []
    assert run["savings_to_date"] == {"runs": 1, "bytes_reclaimed": finished["storage"]["reclaimed_bytes"],
                                      "saving_per_month": finished["cost"]["saving_per_month"], "currency": "CNY"}

    frz = by_id["cri-frz"]
    assert frz["last_run"]["state"] == "GC_DONE"
    assert frz["last_run"]["tags_deleted"] == len(FRZ_TAGS) - len(FRZ_RETAINED["ci/builds"]) == 30
    (window,) = frz["open_windows"]
    end = open_window["storage"]["window_end"]
    assert window["run_id"] == frz_folder.name and window["window_end"] == end
    assert abs(window["days_left"] - (_parse(end) - clock).total_seconds() / 86400) < 0.02
    assert window["days_left"] > 0
    assert frz["freeze"]["on"] is False and frozen_sids("cri-frz-storage") == []
    assert frz["savings_to_date"] == {"runs": 0, "bytes_reclaimed": 0, "saving_per_month": 0.0, "currency": None}

    nowl = by_id["cri-nowl"]
    assert nowl["last_run"] == {"run_id": killed, "state": "RUNNING", "started_at": nowl["last_run"]["started_at"],
                                "finished_at": None, "tags_deleted": None}
    assert nowl["open_windows"] == []
    assert len(frozen_sids("cri-nowl-storage")) == 1
    assert nowl["freeze"] == {"on": True, "sids": frozen_sids("cri-nowl-storage"), "read_from": "bucket",
                              "live_run": None}

    # The table for people: one row per instance, the frozen one named on stderr.
    table = run_cli(["status", "--config", str(write_config(run_config, tmp_path / "run.yaml"))],
                    cli_env(prefect_api_url))
    assert table.returncode == 3
    for instance in ("cri-run", "cri-frz", "cri-nowl"):
        assert instance in table.stdout
    assert "NO live run" in table.stdout
    assert "frozen with no live run: cri-nowl" in table.stderr

    # Once thawed, nothing needs a person: exit 0.
    thawed = run_cli(["thaw", "--config", str(tmp_path / "nowl.yaml")], cli_env(prefect_api_url))
    assert thawed.returncode == 0, thawed.stderr
    again = run_cli(["status", "--ledger", run_config["ledger"]["url"], "--json"], cli_env(prefect_api_url))
    assert again.returncode == 0, again.stderr
    assert all(not e["freeze"]["on"] and e["freeze"]["read_from"] == "ledger"
               for e in json.loads(again.stdout)["instances"])
