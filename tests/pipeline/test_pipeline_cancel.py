"""Cancellation from Prefect mid-GC (issue 4): what the UI's Cancel does, on a served flow.

Real parts only: a real Prefect server (subprocess), the flow served by
``reclaim_storage.serve(...)`` in its own subprocess (Prefect's Runner: it sees the
CANCELLING state, tells the flow run's process over its control channel that this is a
cancel, then SIGTERMs it; the flow's own watch loop also polls the state), the emulator
as a subprocess with a slow GC, the real SDKs. The run is triggered with
``run_deployment(..., timeout=0)`` with the config as parameters, exactly as from the UI.

The dataset (tests/pipeline/crash_support.py, worked out by hand there) has 40 expired
tags; the emulator deletes them one by one (apps/api a00…a19, then apps/web b00…b19), so
a cancel part-way leaves some deleted, all of them in the hand-worked expired set.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import crash_support as cs  # noqa: E402

from emulator_kit import new_emulator  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

GC_RATE = 1.6  # tags per second: 40 tags take 25 s, time enough to cancel part-way
DEPLOYMENT = "crash-cancel"
SERVE = (
    "from acr_gc.flows.reclaim import reclaim_storage\n"
    f"reclaim_storage.serve(name={DEPLOYMENT!r}, print_starting_message=True)\n"
)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A Prefect server and the flow served against it; both stopped at the end."""
    server = cs.PrefectServer()
    children = cs.Children(tmp_path_factory.mktemp("serve"))
    try:
        env = cs.base_env(server.home, server.api_url)
        runner = children.start("serve", [sys.executable, "-c", SERVE], env)
        with _api(server):
            from prefect.client.orchestration import get_client

            def deployment():
                if runner.poll() is not None:
                    raise AssertionError(f"serve exited {runner.poll()}: {runner.output()}")
                with get_client(sync_client=True) as client:
                    try:
                        return client.read_deployment_by_name(f"reclaim-storage/{DEPLOYMENT}")
                    except Exception:  # not registered yet
                        return None

            deadline = time.monotonic() + 60
            while not deployment():
                assert time.monotonic() < deadline, f"deployment not served after 60 s: {runner.output()}"
                time.sleep(0.5)
        yield server, runner
    finally:
        children.stop_all()
        server.stop()


def _api(server: cs.PrefectServer):
    from prefect.settings import PREFECT_API_URL, temporary_settings

    return temporary_settings(updates={PREFECT_API_URL: server.api_url})


def _flow_run_state(flow_run_id):
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return client.read_flow_run(flow_run_id).state


def test_cancel_from_prefect_mid_gc_cancels_gc_thaws_and_reports_partial_deletions(served, tmp_path):
    server, runner = served
    with new_emulator(cs.dataset(cs.ORIGINAL_POLICY), gc_tags_per_second=GC_RATE) as emu, _api(server):
        from prefect.client.orchestration import get_client
        from prefect.deployments import run_deployment
        from prefect.states import Cancelling

        config = cs.write_config(tmp_path / "config.yaml", emu, tmp_path)
        flow_run = run_deployment(
            f"reclaim-storage/{DEPLOYMENT}",
            parameters={"config": cs.config_dict(config), "run_id": "cancel-1"},
            timeout=0,
        )

        def gc_under_way():
            state = _flow_run_state(flow_run.id)
            if state is not None and state.is_final():
                raise AssertionError(f"flow run ended {state!r} before GC was under way\n{cs.diagnostics(emu, runner)}")
            truth = emu.truth()
            tasks = [t for t in cs.gc_tasks(truth) if t["state"] == "RUNNING" and t["tags_deleted"] >= 3]
            return truth if tasks and cs.freeze_sids(cs.bucket_policy(truth)) else None

        cs.wait_for("GC RUNNING under the freeze with a few tags deleted", gc_under_way, 90, emu, runner, interval=0.3)

        # What the UI's Cancel button does.
        with get_client(sync_client=True) as client:
            result = client.set_flow_run_state(flow_run.id, Cancelling())
        assert result.status.value == "ACCEPT", result

        def final_state():
            state = _flow_run_state(flow_run.id)
            return state if state is not None and state.is_final() else None

        state = cs.wait_for("the flow run to reach a final state", final_state, 90, emu, runner, interval=0.5)
        assert state.is_cancelled(), f"flow run ended {state!r}\n{cs.diagnostics(emu, runner)}"

        truth = emu.truth()
        tasks = cs.gc_tasks(truth)
        assert len(tasks) == 1 and tasks[0]["state"] == "CANCELED", tasks
        deleted_count = tasks[0]["tags_deleted"]
        assert 0 < deleted_count < len(cs.EXPIRED), tasks
        assert _same_json(cs.bucket_policy(truth), cs.ORIGINAL_POLICY), cs.bucket_policy(truth)

        # Nothing deleted outside the hand-worked plan; every retained tag is still there.
        left = truth["instances"][cs.INSTANCE]["tags"]
        deleted = {
            tuple(repo.split("/")) + (tag,)
            for repo, tags in cs.ALL_TAGS.items()
            for tag in tags
            if tag not in left.get(repo, [])
        }
        assert len(deleted) == deleted_count
        assert deleted <= cs.EXPIRED, sorted(deleted - cs.EXPIRED)
        for repo, kept in cs.RETAINED.items():
            assert set(kept) <= set(left[repo]), (repo, left[repo])

        summary_path = tmp_path / "out" / cs.INSTANCE / "cancel-1" / "summary.json"
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
        assert summary["state"] == "CANCELED", summary
        assert summary["plan"]["tags_expired"] == len(cs.EXPIRED), summary["plan"]
        assert summary["gc"]["task_id"] == tasks[0]["task_id"], summary["gc"]
        assert summary["gc"]["state"] == "CANCELED", summary["gc"]
        assert summary["gc"]["tags_deleted"] == deleted_count, (summary["gc"], tasks)
        assert summary["checks"]["unexpected_deletions"] == 0, summary["checks"]
        assert summary["checks"]["missed_deletions"] == len(cs.EXPIRED) - deleted_count, summary["checks"]
        assert summary["checks"]["freeze_restored"] is True, summary["checks"]

        assert [status for _, _, status in cs.ledger_freezes(tmp_path)] == ["restored"]

        # The task stays cancelled: nothing more is deleted afterwards.
        time.sleep(1.5)
        later = emu.truth()
        assert later["instances"][cs.INSTANCE]["tags"] == left
        assert cs.gc_tasks(later) == tasks


def _same_json(a, b) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
