"""Opening the ledger database and short transactions over it."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from sqlalchemy import create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DatabaseError
from sqlalchemy.orm import Session, sessionmaker

from acr_gc.ledger.models import Base


class Ledger:
    def __init__(self, url: str):
        parsed = make_url(url)
        connect_args = {}
        if parsed.get_backend_name() == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            connect_args = {"timeout": 30}
        self.engine = create_engine(url, connect_args=connect_args, pool_pre_ping=True)
        if parsed.get_backend_name() == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        _create_tables(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One transaction: committed on success, rolled back on any error."""
        with self._sessions() as session, session.begin():
            yield session

    def dispose(self) -> None:
        self.engine.dispose()


_create_lock = threading.Lock()


def _create_tables(engine) -> None:
    """Create the ledger's tables if missing, safe when runs start together.

    ``create_all`` checks, then creates: two runs opening a new ledger at once (a fleet's
    children, two workers) can both see a table missing and one CREATE then fails with
    "already exists". Threads of one process take turns; another process's win is seen
    on the retry, whose check finds the table.
    """
    with _create_lock:
        for attempt in range(3):
            try:
                Base.metadata.create_all(engine)
                return
            except DatabaseError:
                if attempt == 2:
                    raise
                time.sleep(0.2 * (attempt + 1))


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # WAL lets the sampler read while a run writes; foreign keys are off by default in SQLite.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
