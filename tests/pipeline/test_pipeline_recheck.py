"""Issue 11, item 5: the re-check right before GC starts.

Between the gate and GC the registry goes on living: a ``docker push`` (the freeze does not
stop it) or a rule edited in the console during a pause changes what GC will delete. The
run lists rules and tags again after the freeze and before GC is started (or a person is
asked to start it), and aborts unless the fresh plan lies inside the gated one.

Real parts only: the session's emulator subprocess (its own GC and retention code are the
witness), the real SDKs, ``reclaim_storage`` on the session's Prefect server. The change
between plan and GC is made where a person would make it: while the run is parked at an
exact call (the emulator's ``hold`` on the freeze's PutBucketPolicy) or paused for the
console driver's RunInput; it is made through the emulator's admin dump/restore (the
emulated registry has no push or rule-edit action).

Hand-worked dataset ``cri-rck``: apps/svc has s1 … s5 (s5 newest), one REPO rule keeping
the 3 newest, a build rule ``*`` on a bound source. The gated plan expires s1 and s2.
- a tag ``s6`` pushed (the image of s5, newest) between plan and GC start: s6, s5, s4 are
  now the 3 newest, so s3 is expired by the rules — a tag the gate never saw.
- the rule changed to keep 1 during the console's whitelist pause: s3 and s4 expire too.
"""

from __future__ import annotations

import time

import pytest

from flow_thread_kit import InThread
from pipeline_support import (
    CLOCK,
    GITHUB,
    OPS_AK,
    OPS_PRINCIPAL,
    OPS_SECRET,
    bucket,
    config_dict,
    csv_rows,
    instance,
    layer,
    ledger_rows,
    repo,
    run_flow,
    summary_of,
    tag,
)

pytestmark = pytest.mark.slow

BUCKET = "cri-rck-storage"
TAGS = ["s5", "s4", "s3", "s2", "s1"]  # newest first
GATED = {"apps/svc:s1", "apps/svc:s2"}


def recheck_dataset(instance_id: str) -> dict:
    rows = [tag(t, t.upper(), f"2026-10-{20 - i:02d}T00:00:00Z") for i, t in enumerate(TAGS)]
    rules = [{"scope": "REPO", "namespace": "apps", "repo": "svc", "retention_tag_count": 3}]
    return {
        "clock": CLOCK,
        "credentials": [{"access_key_id": OPS_AK, "access_key_secret": OPS_SECRET, "principal": OPS_PRINCIPAL}],
        "layers": {layer("base"): 10_000, **{layer(t.upper()): 1_000 + i for i, t in enumerate(TAGS)}},
        "instances": [instance(instance_id, BUCKET, ["apps"],
                               [repo("apps", "svc", rows, source_code=GITHUB, build_rules=["*"])], rules)],
        "buckets": [bucket(BUCKET)],
    }


def _tags(truth: dict, instance_id: str) -> set[str]:
    return {f"{name}:{t}" for name, tags in truth["instances"][instance_id]["tags"].items() for t in tags}


def _wait(what: str, predicate, timeout: float = 120.0, alive=lambda: True):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if not alive():
            raise AssertionError(f"the run ended before {what}")
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _change_registry(emu, instance_id: str, change) -> None:
    """What a person does meanwhile: the emulator's state dumped, changed, restored; a held
    request is then released and answered against the changed registry."""
    doc = emu.dump()
    [inst] = [i for i in doc["registry"]["instances"] if i["instance_id"] == instance_id]
    change(inst)
    doc["faults"]["settings"]["hold"] = None
    emu.restore(doc)


def _assert_aborted_before_gc(emu, config, state, folder, before: dict, instance_id: str, named: set[str]):
    assert state.is_failed(), state.message
    summary = summary_of(folder)
    assert summary["state"] == "FAILED"
    message = ledger_rows(config, folder.name)["run"].message
    assert "re-check before GC" in message and all(name in message for name in named), message
    assert summary["gc"]["task_id"] is None
    truth = emu.truth()
    assert truth["instances"][instance_id]["gc_tasks"] == []  # GC never started
    assert truth["buckets"][BUCKET]["policy"] == before["buckets"][BUCKET]["policy"]  # thawed
    rows = ledger_rows(config, folder.name)
    assert [f.status for f in rows["freezes"]] == ["restored"]  # frozen, then undone
    assert rows["gc_tasks"] == []
    assert summary["checks"]["freeze_restored"] is True
    # deleted_tags.csv was written before GC from the gated plan: the new tags are not in it
    assert {f"{r['namespace']}/{r['repo']}:{r['tag']}" for r in csv_rows(folder / "deleted_tags.csv")} == GATED


def test_a_tag_pushed_between_plan_and_gc_start_aborts_the_run_before_gc(emulator, prefect_api_url, tmp_path,
                                                                         monkeypatch):
    instance_id = "cri-rck"
    emulator.load(recheck_dataset(instance_id))
    before = emulator.truth()
    config = config_dict((emulator.acr_endpoint, emulator.oss_endpoint), tmp_path, instance_id, BUCKET)
    emulator.set_faults(hold={"action": "PutBucketPolicy", "skip": 0})  # park the run at the freeze
    run = InThread(lambda: run_flow(config, monkeypatch))
    _wait("the freeze to be held", lambda: emulator.set_faults()["held"] >= 1, alive=run.thread.is_alive)

    def push_s6(inst):  # `docker tag svc:s5 svc:s6 && docker push`: the newest tag, s5's image
        [svc] = [r for r in inst["repos"] if (r["namespace"], r["name"]) == ("apps", "svc")]
        s5 = next(t for t in svc["tags"] if t[0] == "s5")
        svc["tags"].append(["s6", s5[1], s5[2] + 86_400_000, s5[3], s5[4]])

    _change_registry(emulator, instance_id, push_s6)
    state, folder = run.join()

    _assert_aborted_before_gc(emulator, config, state, folder, before, instance_id, {"apps/svc:s3"})
    assert _tags(emulator.truth(), instance_id) == _tags(before, instance_id) | {"apps/svc:s6"}  # nothing deleted


def test_a_rule_changed_during_a_console_pause_aborts_the_run_before_the_person_is_asked(emulator, prefect_api_url,
                                                                                        tmp_path, monkeypatch):
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    from prefect.flow_runs import resume_flow_run

    from acr_gc.gc.console import WHITELIST_PAUSE_KEY

    instance_id = f"cri-rck-console-{time.time_ns()}"  # its GC whitelist is not recorded yet: the run asks
    emulator.load(recheck_dataset(instance_id))
    before = emulator.truth()
    config = config_dict((emulator.acr_endpoint, emulator.oss_endpoint), tmp_path, instance_id, BUCKET,
                         gc={"driver": "console", "timeout": 120, "poll_interval": 0.2, "on_timeout": "cancel"})
    run = InThread(lambda: run_flow(config, monkeypatch))

    def paused_run():
        ids = _flow_run_ids(config) if (tmp_path / "ledger.db").exists() else []
        if not ids:
            return None
        with get_client(sync_client=True) as client:
            [flow_run] = client.read_flow_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids)))
        return flow_run if flow_run.state and flow_run.state.is_paused() else None

    flow_run = _wait("the whitelist pause", paused_run, alive=run.thread.is_alive)
    assert flow_run.state.state_details.pause_key == WHITELIST_PAUSE_KEY

    def keep_one(inst):  # the operator edits the retention rule in the console meanwhile
        [rule] = inst["lifecycle_rules"]
        rule["retention_tag_count"] = 1

    _change_registry(emulator, instance_id, keep_one)
    resume_flow_run(flow_run.id, run_input={"whitelisted": True})
    state, folder = run.join()

    _assert_aborted_before_gc(emulator, config, state, folder, before, instance_id, {"apps/svc:s3", "apps/svc:s4"})
    assert _tags(emulator.truth(), instance_id) == _tags(before, instance_id)  # nothing deleted
    with get_client(sync_client=True) as client:
        [flow_run] = client.read_flow_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run.id])))
    assert flow_run.empirical_policy.pause_keys == {WHITELIST_PAUSE_KEY}  # never asked to start GC


def _flow_run_ids(config: dict) -> list[str]:
    """The flow run ids the ledger's run rows name (written when a run starts)."""
    from sqlalchemy import select

    from acr_gc.ledger import Ledger
    from acr_gc.ledger.models import Run

    ledger = Ledger(config["ledger"]["url"])
    try:
        with ledger.session() as session:
            return [r.flow_run_id for r in session.scalars(select(Run)) if r.flow_run_id]
    finally:
        ledger.dispose()


def test_an_auto_rule_running_before_gc_is_named_in_the_report(emulator, prefect_api_url, tmp_path, monkeypatch):
    """Issue 11, item 4: ``Auto`` rules whose ``NextTime`` comes before GC started delete tags by
    themselves, outside the gate; the report names them. Two Auto rules keep the same 3 newest
    tags as the plain rule: one due an hour after the dataset's clock, one next June. While the
    run is parked at the freeze, the emulated clock passes the first one's NextTime (the service
    runs it: s1 and s2 go by themselves); GC then starts later, so exactly that rule is named."""
    instance_id = "cri-rck-auto"
    data = recheck_dataset(instance_id)
    keep3 = data["instances"][0]["lifecycle_rules"][0]
    data["instances"][0]["lifecycle_rules"] += [
        {**keep3, "auto": True, "schedule_time": "WEEK", "next_time": "2026-11-01T01:00:00Z"},
        {"scope": "NAMESPACE", "namespace": "apps", "retention_tag_count": 3, "auto": True,
         "schedule_time": "MONTH", "next_time": "2027-06-01T00:00:00Z"},
    ]
    emulator.load(data)
    before = emulator.truth()
    config = config_dict((emulator.acr_endpoint, emulator.oss_endpoint), tmp_path, instance_id, BUCKET)
    emulator.set_faults(hold={"action": "PutBucketPolicy", "skip": 0})
    run = InThread(lambda: run_flow(config, monkeypatch))
    _wait("the freeze to be held", lambda: emulator.set_faults()["held"] >= 1, alive=run.thread.is_alive)
    emulator.advance_clock(0.1)  # 2.4 h: the first Auto rule is due and runs by itself
    assert _tags(before, instance_id) - _tags(emulator.truth(), instance_id) == GATED
    emulator.set_faults(hold=None)
    state, folder = run.join()

    assert state.is_completed(), state.message
    summary = summary_of(folder)
    assert summary["checks"]["unexpected_deletions"] == 0 and summary["gc"]["state"] == "SUCCESS"
    for name in ("report.md", "report.html"):
        text = (folder / name).read_text(encoding="utf-8")
        named = [line for line in text.splitlines() if "deletes tags by itself" in line]
        assert len(named) == 1, (name, named)
        assert "at 2026-11-01T01:00:00Z; acr-gc can only verify afterwards" in named[0], named
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["summary.json", "plan.csv", "deleted_tags.csv", "samples.csv", "report.html", "report.md", "storage.png"])
