"""A new ledger opened by several runs at once (a fleet's children) is created once, cleanly."""

from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import inspect

from acr_gc.ledger import Ledger


def test_many_runs_opening_a_new_ledger_together(tmp_path):
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    with ThreadPoolExecutor(max_workers=8) as pool:
        ledgers = list(pool.map(lambda _: Ledger(url), range(16)))
    assert set(inspect(ledgers[0].engine).get_table_names()) == {"runs", "freezes", "gc_tasks", "samples", "run_plans", "instance_locks",
                                                                    "manifest_cache"}
    for ledger in ledgers:
        ledger.dispose()
