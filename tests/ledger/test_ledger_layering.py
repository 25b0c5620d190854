"""SQL stays in ``acr_gc/ledger`` (issue 14 item 1): tasks, flows, reports and the CLI call
the ledger's named operations and hold no query, session or SQLAlchemy import.

Before this rule 11 modules outside the ledger used SQLAlchemy (10 with sessions and
queries, plus config.py parsing URLs); the scan below is what keeps the count at 0.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import acr_gc

PACKAGE = Path(acr_gc.__file__).resolve().parent
# the emulator is a separate program with its own storage; the ledger is where SQL lives
OUTSIDE = [p for p in sorted(PACKAGE.rglob("*.py"))
           if p.relative_to(PACKAGE).parts[0] not in ("ledger", "emulator")]
SQL = re.compile(r"\bselect\(|\.session\(|\bsession\.(get|add|merge|execute|scalars?|delete|flush)\(")


def _sqlalchemy_imports(source: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "sqlalchemy":
            found.append(node.module)
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] == "sqlalchemy"]
    return found


def test_the_scan_sees_the_package():
    names = {str(p.relative_to(PACKAGE)) for p in OUTSIDE}
    assert {"cli.py", "config.py", "flows/reclaim.py", "reports/build.py", "tasks/freeze.py"} <= names


def test_no_sqlalchemy_import_outside_the_ledger():
    offenders = {str(p.relative_to(PACKAGE)): _sqlalchemy_imports(p.read_text(encoding="utf-8")) for p in OUTSIDE}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_no_session_or_query_outside_the_ledger():
    offenders = [f"{p.relative_to(PACKAGE)}:{n}: {line.strip()}" for p in OUTSIDE
                 for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if SQL.search(line)]
    assert offenders == []


def test_the_scan_would_catch_sql():
    """The patterns match what the callers used to hold (so the two tests above can fail)."""
    for line in ("with ledger.session() as session:", "session.get(Run, run_id)",
                 "rows = session.scalars(select(Run).where(Run.state == 'GC_DONE'))"):
        assert SQL.search(line), line
    assert _sqlalchemy_imports("from sqlalchemy import select") == ["sqlalchemy"]
    assert _sqlalchemy_imports("import sqlalchemy.orm") == ["sqlalchemy.orm"]


STATE_LITERAL = re.compile(r"""["'](RUNNING|PLANNED|BLOCKED|REJECTED|GC_DONE|COMPLETE)["']""")


def test_run_states_are_named_through_the_enum():
    """Run states are ``RunState`` members outside the one module that defines them.
    FAILED and CANCELED are GC task states too (the driver's), so only the names that are
    run states alone are looked for; RUNNING is a GC task state inside gc/."""
    allowed_files = {"gc/driver.py", "gc/console.py", "gc/emulator.py"}
    offenders = []
    for p in OUTSIDE:
        name = str(p.relative_to(PACKAGE))
        if name in allowed_files:
            continue
        for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
            if STATE_LITERAL.search(line.split("#")[0]):
                offenders.append(f"{name}:{n}: {line.strip()}")
    assert offenders == []


def test_importing_the_ledger_stays_light():
    """``acr_gc.ledger`` (models, store, states) loads without pandas: processes that only
    hold a lock import it (tests/reliability/test_instance_lock.py patches datetime first,
    which pandas cannot load under), and so does every CLI command before its real work."""
    import subprocess
    import sys

    probe = "import sys, acr_gc.ledger, acr_gc.ledger.instance_lock; print('pandas' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
