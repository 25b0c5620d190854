"""Issue 11, item 6, the other half: a killed run's GC start with no task id is adopted only
when the driver finds a task really running, and then with that run's plan.

Real parts: the session's emulator and its GC (started through the same GC action the
driver sends, as a killed run's lost answer would have left it), ``EmulatorGcDriver`` over
the real SDK, a real SQLite ledger holding what a run killed at that moment leaves behind
(its RUNNING row, its plan, its baseline sample, the GC start's intent row). The
planned-afresh half runs a whole kill in tests/pipeline/test_pipeline_crash.py.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone

import pandas as pd

from acr_gc.cloud import credentials
from acr_gc.cloud.clients import acr_client
from acr_gc.config import Config
from acr_gc.gc.emulator import EmulatorGcDriver
from acr_gc.ledger import GcTask, Ledger, Run, Sample
from acr_gc.ledger.plans import save_plan
from acr_gc.tasks.takeover import take_over_dead_runs
from emulator_kit import AK, SECRET, call_gc_action, make_acr_client
from pipeline_support import CLOCK, GITHUB, OPS_AK, OPS_PRINCIPAL, OPS_SECRET, bucket, config_dict, instance, layer, \
    repo, tag

INSTANCE, BUCKET = "cri-tko", "cri-tko-storage"
TAGS = [f"t{i:03d}" for i in range(400)]  # 398 expired: GC at 20 tags/s runs ~20 s


def _dataset() -> dict:
    rows = [tag(t, t, f"2026-10-01T{i // 60 % 24:02d}:{i % 60:02d}:00Z") for i, t in enumerate(TAGS)]
    rules = [{"scope": "REPO", "namespace": "apps", "repo": "svc", "retention_tag_count": 2}]
    return {"clock": CLOCK,
            "credentials": [{"access_key_id": OPS_AK, "access_key_secret": OPS_SECRET, "principal": OPS_PRINCIPAL},
                            {"access_key_id": AK, "access_key_secret": SECRET, "principal": "console-clicker"}],
            "layers": {layer("base"): 100, **{layer(t): 10 for t in TAGS}},
            "instances": [instance(INSTANCE, BUCKET, ["apps"],
                                   [repo("apps", "svc", rows, source_code=GITHUB, build_rules=["*"])], rules)],
            "buckets": [bucket(BUCKET)]}


def _killed_run(ledger: Ledger, run_id: str, client_token: str | None = None) -> pd.DataFrame:
    """What a run killed right after recording its GC start (before the answer) leaves."""
    now = datetime.now(timezone.utc)
    plan = pd.DataFrame({"namespace": "apps", "repo": "svc", "tag": TAGS, "digest": "sha256:x",
                         "expired": [True] * 398 + [False] * 2})
    with ledger.session() as session:
        session.add(Run(run_id=run_id, instance_id=INSTANCE, bucket=BUCKET, region="cn-hangzhou", state="RUNNING",
                        started_at=now, out_dir="out"))
    save_plan(ledger, run_id, plan)
    with ledger.session() as session:
        session.add(Sample(run_id=run_id, bucket=BUCKET, taken_at=now, storage_bytes=1, object_count=1,
                           phase="before"))
        session.add(GcTask(run_id=run_id, instance_id=INSTANCE, driver="emulator", state="intent",
                           client_token=client_token, created_at=now))
    return plan


def test_an_intended_gc_start_is_adopted_only_while_the_task_really_runs(emulator, tmp_path, monkeypatch):
    emulator.load(_dataset())
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", OPS_AK)
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", OPS_SECRET)
    credentials.reset_chain()
    config = Config.model_validate(config_dict((emulator.acr_endpoint, emulator.oss_endpoint), tmp_path, INSTANCE,
                                               BUCKET))
    driver = EmulatorGcDriver(acr_client(config))
    ledger = Ledger(config.ledger.url)
    try:
        # the killed run's start did reach the service: a task runs, its answer was lost
        _killed_run(ledger, "killed-1")
        task_id = call_gc_action(make_acr_client(emulator.acr_endpoint), "CreateGarbageCollectionTask",
                                 InstanceId=INSTANCE)["TaskId"]
        inherited = take_over_dead_runs(ledger, INSTANCE, "new-1", started_task=driver.started_task)
        assert inherited is not None and inherited.task_id == task_id
        assert inherited.run.run_id == "killed-1" and int(inherited.verdicts["expired"].sum()) == 398
        [task] = emulator.truth()["instances"][INSTANCE]["gc_tasks"]
        assert task["task_id"] == task_id and task["state"] in ("PENDING", "RUNNING")

        # the same leftovers once no task is active and none was started with the intent's
        # client token (none was ever started): nothing is inherited, the run is closed, the
        # new run plans afresh
        call_gc_action(make_acr_client(emulator.acr_endpoint), "CancelGarbageCollectionTask",
                       InstanceId=INSTANCE, TaskId=task_id)
        deadline = time.monotonic() + 15
        while driver.active_task() is not None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert driver.active_task() is None
        _killed_run(ledger, "killed-2")
        assert take_over_dead_runs(ledger, INSTANCE, "new-2", started_task=driver.started_task) is None
        with ledger.session() as session:
            closed = session.get(Run, "killed-2")
            assert closed.state == "FAILED" and "before its GC started" in closed.message

        # a start that did create its task (with the intent's client token), which has ended
        # since: that run's GC happened, so its task is adopted with its plan, not started again
        ended = call_gc_action(make_acr_client(emulator.acr_endpoint), "CreateGarbageCollectionTask",
                               InstanceId=INSTANCE, ClientToken="killed-3-start")["TaskId"]
        call_gc_action(make_acr_client(emulator.acr_endpoint), "CancelGarbageCollectionTask",
                       InstanceId=INSTANCE, TaskId=ended)
        assert driver.active_task() is None
        _killed_run(ledger, "killed-3", client_token="killed-3-start")
        inherited = take_over_dead_runs(ledger, INSTANCE, "new-3", started_task=driver.started_task)
        assert inherited is not None and inherited.task_id == ended and inherited.run.run_id == "killed-3"
        assert [t["task_id"] for t in emulator.truth()["instances"][INSTANCE]["gc_tasks"]] == [task_id, ended]
    finally:
        ledger.dispose()
