"""Opening the ledger database and short transactions over it.

A ledger that cannot be written is reported as :class:`LedgerUnavailable`, one line
naming the URL, what is wrong and what to do: its folder cannot be created, the file or
its folder is read-only, or another process holds its write lock for longer than the busy
timeout. On SQLite that timeout is 30 s, or ``?timeout=<seconds>`` in ``ledger.url``.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit

from sqlalchemy import create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DatabaseError, DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from acr_gc.ledger.models import Base

SQLITE_BUSY_TIMEOUT_S = 30.0  # a run's writes are short: waiting longer means something holds the file


class LedgerUnavailable(RuntimeError):
    """The ledger cannot be opened or written; the message says why and what to do."""


class Ledger:
    def __init__(self, url: str):
        parsed = make_url(url)
        self.url = url if parsed.password is None else parsed.render_as_string(hide_password=True)
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        connect_args = {}
        if self.is_sqlite:
            _create_folder(self.url, _sqlite_file(parsed))
            self.busy_timeout_s = float(parsed.query.get("timeout", SQLITE_BUSY_TIMEOUT_S))
            connect_args = {"timeout": self.busy_timeout_s}
        self.engine = create_engine(url, connect_args=connect_args, pool_pre_ping=True)
        if self.is_sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas)
        try:
            _create_tables(self.engine)
        except OperationalError as exc:
            raise self._unavailable(exc) from None
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One transaction: committed on success, rolled back on any error."""
        try:
            with self._sessions() as session, session.begin():
                yield session
        except OperationalError as exc:
            raise self._unavailable(exc) from None

    def check_writable(self) -> None:
        """Write once (undone), so that a run finds out before it starts, not midway."""
        try:
            with self.engine.connect() as connection:
                if self.is_sqlite:  # rewriting the header: refused on a read-only file, waits on a lock
                    version = connection.execute(text("PRAGMA user_version")).scalar_one()
                    connection.execute(text(f"PRAGMA user_version = {int(version)}"))
                else:  # refused in a read-only transaction or on a standby
                    connection.execute(text("CREATE TEMPORARY TABLE acr_gc_write_check (x integer)"))
                connection.rollback()
        except DBAPIError as exc:
            raise self._unavailable(exc) from None

    def dispose(self) -> None:
        self.engine.dispose()

    def _unavailable(self, exc: DBAPIError) -> LedgerUnavailable:
        reason = str(exc.orig).splitlines()[0] if exc.orig is not None else type(exc).__name__
        name = getattr(exc.orig, "sqlite_errorname", "")
        if name in ("SQLITE_BUSY", "SQLITE_LOCKED"):
            return LedgerUnavailable(
                f"ledger {self.url}: locked by another process for more than {self.busy_timeout_s:g} s ({reason}); "
                "let that process finish, or wait longer with ?timeout=<seconds> in ledger.url")
        if name.startswith(("SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_PERM", "SQLITE_AUTH")):
            return LedgerUnavailable(
                f"ledger {self.url}: cannot write to it ({reason}); make the file and its folder writable, "
                "or point ledger.url at a writable place")
        return LedgerUnavailable(f"ledger {self.url}: {reason}")


def _sqlite_file(parsed) -> Path | None:
    """The database file of a SQLite URL (``file:`` URIs included); None in memory."""
    database = parsed.database
    if not database or database == ":memory:":
        return None
    if parsed.query.get("uri") in ("true", "1") and database.startswith("file:"):
        path = urlsplit(database).path
        return Path(path) if path and path != ":memory:" else None
    return Path(database)


def _create_folder(url: str, database: Path | None) -> None:
    if database is None:
        return
    try:
        database.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LedgerUnavailable(
            f"ledger {url}: cannot create its folder {database.parent} ({exc.strerror or exc}); fix ledger.url"
        ) from None


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
                _add_new_columns(engine)
                return
            except OperationalError as exc:
                if not any(m in str(exc.orig) for m in ("already exists", "duplicate column")) or attempt == 2:
                    raise
            except DatabaseError:
                if attempt == 2:
                    raise
            time.sleep(0.2 * (attempt + 1))


def _add_new_columns(engine) -> None:
    """A ledger made by an earlier acr-gc lacks the nullable columns added since (e.g.
    ``gc_tasks.client_token``): ``create_all`` makes only missing tables, so they are added
    here. Only nullable columns are ever added to existing tables, so old rows stay valid."""
    existing = inspect(engine)
    missing = [(table, column) for table in Base.metadata.sorted_tables if existing.has_table(table.name)
               for column in table.columns
               if column.name not in {c["name"] for c in existing.get_columns(table.name)}]
    if not missing:
        return
    with engine.begin() as connection:
        for table, column in missing:
            if not column.nullable:
                raise RuntimeError(f"ledger table {table.name} lacks the required column {column.name}")
            kind = column.type.compile(dialect=engine.dialect)
            connection.execute(text(f'ALTER TABLE {table.name} ADD COLUMN {column.name} {kind}'))


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # WAL lets the sampler read while a run writes; foreign keys are off by default in SQLite.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
