"""A new ledger opened by several runs at once (a fleet's children) is created once, cleanly."""

from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import inspect

from acr_gc.ledger import Ledger


def test_many_runs_opening_a_new_ledger_together(tmp_path):
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    with ThreadPoolExecutor(max_workers=8) as pool:
        ledgers = list(pool.map(lambda _: Ledger(url), range(16)))
    assert set(inspect(ledgers[0].engine).get_table_names()) == {"runs", "freezes", "gc_tasks", "samples", "run_plans", "instance_locks",
                                                                    "manifest_cache", "approvals", "run_rules"}
    for ledger in ledgers:
        ledger.dispose()


def test_a_ledger_made_before_the_approvals_table_gains_it_and_keeps_its_rows(tmp_path):
    """Issue 15 added ``approvals`` as a table of its own: an older ledger file opens, its
    runs are still there, and the new table is created beside them."""
    from datetime import datetime, timezone

    from sqlalchemy import create_engine

    from acr_gc.ledger import Run
    from acr_gc.ledger.models import Approval, Base

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_engine(url)
    Base.metadata.create_all(engine, tables=[t for t in Base.metadata.sorted_tables if t.name != "approvals"])
    with engine.begin() as connection:
        connection.execute(Run.__table__.insert().values(
            run_id="old-run", instance_id="cri-x", bucket="b", region="cn-hangzhou", state="COMPLETE",
            started_at=datetime(2026, 1, 1, tzinfo=timezone.utc), out_dir="out"))
    assert "approvals" not in inspect(engine).get_table_names()
    engine.dispose()

    ledger = Ledger(url)
    with ledger.session() as session:
        assert session.get(Run, "old-run").state == "COMPLETE"
        session.add(Approval(run_id="old-run", asked_at=datetime.now(timezone.utc), approved=True,
                             answered_by="alice", reason="ok", via="prefect"))
    with ledger.session() as session:
        assert session.get(Approval, "old-run").answered_by == "alice"
    ledger.dispose()


def test_a_ledger_made_before_gc_tasks_had_a_client_token_gains_the_column(tmp_path):
    """Ledgers outlive upgrades: a gc_tasks table without ``client_token`` (as made by the
    acr-gc before it) gets the column on open, its rows kept."""
    import sqlite3
    from datetime import datetime, timezone

    from acr_gc.ledger import GcTask, Ledger, Run

    url = f"sqlite:///{tmp_path / 'old.db'}"
    Ledger(url).dispose()
    with sqlite3.connect(tmp_path / "old.db") as db:
        db.execute("ALTER TABLE gc_tasks DROP COLUMN client_token")
        db.execute("INSERT INTO runs (run_id, instance_id, bucket, region, state, started_at, out_dir, "
                   "price_per_gb_month, currency, charts, savings_recorded) VALUES ('r1', 'cri-x', 'b', 'cn-hangzhou', "
                   "'FAILED', '2026-01-01 00:00:00', 'out', 0, 'CNY', 0, 0)")
        db.execute("INSERT INTO gc_tasks (run_id, instance_id, driver, task_id, state, tags_deleted, objects_deleted, "
                   "bytes_deleted, created_at) VALUES ('r1', 'cri-x', 'emulator', 'gct-1', 'SUCCESS', 3, 4, 5, "
                   "'2026-01-01 00:00:00')")
        assert "client_token" not in {row[1] for row in db.execute("PRAGMA table_info(gc_tasks)")}
    ledger = Ledger(url)
    with ledger.session() as session:
        old = session.get(GcTask, 1)
        assert (old.task_id, old.client_token, session.get(Run, "r1").state) == ("gct-1", None, "FAILED")
        session.add(GcTask(run_id="r1", instance_id="cri-x", driver="emulator", client_token="t" * 32,
                           state="intent", created_at=datetime.now(timezone.utc)))
    with ledger.session() as session:
        assert session.get(GcTask, 2).client_token == "t" * 32
