"""Ledger URLs: checked, resolved and shown by SQLAlchemy's own parser, so the config and
the CLI agree with :class:`~acr_gc.ledger.store.Ledger` on what a URL means."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError


def check_url(value: str) -> None:
    """ValueError unless ``value`` is a usable database URL without a password; parsed and
    its driver imported by SQLAlchemy itself. The message never repeats the URL, which
    may hold a password."""
    try:
        url = make_url(value)
    except (ArgumentError, ValueError):
        raise ValueError("not a database URL such as sqlite:///.acr-gc/ledger.db") from None
    if url.password:  # the config is the flow's parameter: Prefect would store and show it
        raise ValueError("holds a password, which would be stored and shown as a flow parameter: leave it out "
                         "of the URL and give it through PGPASSWORD or ~/.pgpass")
    try:
        dialect = url.get_dialect()
        dialect.import_dbapi()
        dialect().create_connect_args(url)  # the dialect's own URL form, without connecting
    except NoSuchModuleError:
        raise ValueError(f"unknown database {url.drivername!r}") from None
    except ImportError as exc:
        raise ValueError(f"the driver for {url.drivername!r} is not installed ({exc.name})") from None
    except ArgumentError:
        raise ValueError(f"not a valid {url.get_backend_name()} URL") from None


def beside(value: str, folder: Path) -> str:
    """A relative SQLite file path taken relative to ``folder``; any other URL as it is."""
    url = make_url(value)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:" \
            or url.database.startswith("file:") or Path(url.database).is_absolute():
        return value
    return url.set(database=str((folder / url.database).resolve())).render_as_string(hide_password=False)


def shown_url(value: str) -> str:
    """The URL to print: never a password on screen."""
    return make_url(value).render_as_string(hide_password=True)
