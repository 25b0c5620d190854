"""The ledger on PostgreSQL: a full inline ``reclaim_storage`` run of the hand-worked
instance cri-rep (tests/reporting/reporting_support.py: the arithmetic is there) with
``ledger.url`` on a throwaway PostgreSQL cluster, then ``finalize_savings`` racing itself.

Real parts only: the emulator as a subprocess (one emulated day = one real second), the
real SDKs, the session's Prefect server, PostgreSQL 15 through psycopg 3. The ledger rows
are read back from PostgreSQL with SQLAlchemy, independently of the flow.
"""

from __future__ import annotations

import json
import threading

import pytest
from sqlalchemy import create_engine, select, text, update
from sqlalchemy.orm import Session

from emulator_kit import new_emulator
from reporting_support import (
    AFTER_BYTES,
    BEFORE_BYTES,
    BUCKET,
    CURRENCY,
    EXPIRED,
    INSTANCE,
    RECLAIMED_BYTES,
    SAVING,
    bucket_truth,
    config_dict,
    csv_rows,
    summary_of,
    use_keys,
)

pytestmark = pytest.mark.slow

DAY_SECONDS = 1.0  # the 4-day window (2 noncurrent + 2 margin) takes ~4 s


@pytest.fixture(scope="module")
def emu():
    from reporting_support import dataset

    with new_emulator(dataset(), day_seconds=DAY_SECONDS, gc_tags_per_second=50) as process:
        yield process


def test_reclaim_run_keeps_its_ledger_in_postgres_and_savings_once(emu, postgres_url, prefect_api_url, tmp_path,
                                                                   monkeypatch):
    from acr_gc.config import Config
    from acr_gc.flows.reclaim import reclaim_storage
    from acr_gc.ledger import Ledger
    from acr_gc.ledger.models import Freeze, GcTask, Run, Sample
    from acr_gc.reports.build import finalize_savings
    from acr_gc.reports.files import new_run_id
    from reporting_support import dataset

    emu.load(dataset())
    assert bucket_truth(emu)["storage_bytes"] == BEFORE_BYTES

    config = config_dict(emu, tmp_path, "inline", day_length=DAY_SECONDS)
    config["ledger"]["url"] = postgres_url
    use_keys(monkeypatch)
    run_id = new_run_id()
    state = reclaim_storage(Config.model_validate(config), run_id=run_id, return_state=True)
    truth = emu.truth()

    assert state.is_completed(), state.message
    summary = summary_of(tmp_path / "out" / INSTANCE / run_id)
    assert summary["state"] == "COMPLETE"
    storage = summary["storage"]
    assert storage["before_bytes"] == BEFORE_BYTES
    assert storage["after_bytes"] == AFTER_BYTES == truth["buckets"][BUCKET]["storage_bytes"]
    assert storage["reclaimed_bytes"] == RECLAIMED_BYTES
    assert summary["gc"]["tags_deleted"] == len(EXPIRED)
    # No SQLite file crept in beside the run: the ledger is the PostgreSQL database.
    assert not (tmp_path / "ledger.db").exists()

    # ---- the ledger rows, read back from PostgreSQL --------------------------------------
    engine = create_engine(postgres_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("select current_setting('server_version_num')::int")).scalar() >= 100000
        with Session(engine) as session:
            run = session.get(Run, run_id)
            assert run is not None, "no runs row in PostgreSQL"
            assert (run.instance_id, run.bucket, run.state) == (INSTANCE, BUCKET, "COMPLETE")
            assert run.flow_run_id == str(state.state_details.flow_run_id)
            assert run.savings_recorded is True
            assert run.started_at.tzinfo is not None and run.gc_finished_at < run.window_end
            assert json.loads(run.gc_json)["tags_deleted"] == len(EXPIRED)

            freezes = list(session.scalars(select(Freeze).where(Freeze.run_id == run_id)))
            assert [(f.bucket, f.status, f.had_policy) for f in freezes] == [(BUCKET, "restored", False)]
            assert freezes[0].restored_at is not None

            tasks = list(session.scalars(select(GcTask).where(GcTask.run_id == run_id)))
            emulated = truth["instances"][INSTANCE]["gc_tasks"]
            assert [(t.instance_id, t.task_id, t.state, t.tags_deleted) for t in tasks] == [
                (INSTANCE, emulated[0]["task_id"], "SUCCESS", len(EXPIRED))]

            samples = list(session.scalars(select(Sample).where(Sample.run_id == run_id)
                                           .order_by(Sample.taken_at, Sample.id)))
            assert len(samples) == storage["samples"] >= 3
            assert (samples[0].phase, samples[0].storage_bytes) == ("before", BEFORE_BYTES)
            assert (samples[-1].phase, samples[-1].storage_bytes) == ("after", AFTER_BYTES)
            assert {s.bucket for s in samples} == {BUCKET}
    finally:
        engine.dispose()

    savings_csv = tmp_path / "out" / "savings.csv"
    expected_row = {
        "instance": INSTANCE, "bytes_before": str(BEFORE_BYTES), "bytes_after": str(AFTER_BYTES),
        "bytes_reclaimed": str(RECLAIMED_BYTES), "currency": CURRENCY, "saving_per_month": str(SAVING),
        "run_id": run_id, "forecast_bytes": "",  # no registry endpoint in this config: no exact forecast
    }
    [row] = csv_rows(savings_csv)
    assert {k: v for k, v in row.items() if k != "month"} == expected_row

    # ---- finalize_savings: exactly once, sequentially and when racing ---------------------
    ledger = Ledger(postgres_url)
    try:
        assert [finalize_savings(ledger, run_id) for _ in range(3)] == [False, False, False]
        assert len(csv_rows(savings_csv)) == 1

        for round_no in range(5):
            # Forget the recorded saving (row and flag), then let threads race to record it:
            # SELECT … FOR UPDATE makes the second wait and then see the flag set.
            savings_csv.unlink()
            with ledger.session() as session:
                session.execute(update(Run).where(Run.run_id == run_id).values(savings_recorded=False))
            barrier = threading.Barrier(2)
            results: list[bool] = []
            errors: list[BaseException] = []

            def race():
                try:
                    barrier.wait(10)
                    results.append(finalize_savings(ledger, run_id))
                except BaseException as exc:  # noqa: BLE001 - reported below
                    errors.append(exc)

            threads = [threading.Thread(target=race) for _ in range(2)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(60)
            assert not errors, errors
            assert sorted(results) == [False, True], f"round {round_no}: {results}"
            rows = csv_rows(savings_csv)
            assert len(rows) == 1, f"round {round_no}: {len(rows)} savings rows"
            assert {k: v for k, v in rows[0].items() if k != "month"} == expected_row
            assert finalize_savings(ledger, run_id) is False

        with ledger.session() as session:
            assert session.get(Run, run_id).savings_recorded is True
    finally:
        ledger.dispose()
