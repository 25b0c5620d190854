"""A throwaway PostgreSQL cluster for the tests (tests/postgres/).

``PostgresCluster`` runs Debian's PostgreSQL binaries (``/usr/lib/postgresql/<ver>/bin``,
or ``initdb``/``pg_ctl`` on PATH): ``initdb`` into a temp dir (as the ``postgres`` user
when the tests run as root, since PostgreSQL refuses to run as root), ``pg_ctl start`` on
a free port on 127.0.0.1 with its socket in the temp dir, trust auth for local
connections only; ``stop()`` stops it (immediate mode) and deletes the directory.

Fixtures (re-exported by tests/postgres/conftest.py):

* ``postgres_cluster`` (session): the running cluster; FAILS (never skips) with the
  cluster's log when PostgreSQL cannot be started.
* ``postgres_url`` (session): ``postgresql+psycopg://postgres@127.0.0.1:<port>/acr_gc``,
  a database created for the ledger.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from prefect_server_kit import free_port

SUPERUSER = "postgres"


def postgres_bin_dir() -> Path:
    """The directory holding initdb and pg_ctl: Debian's newest version, else PATH."""
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
                      key=lambda p: int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0)
    if versions:
        return Path(versions[-1]).parent
    found = shutil.which("pg_ctl")
    if found and shutil.which("initdb"):
        return Path(found).resolve().parent
    raise RuntimeError("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/pg_ctl and no pg_ctl on PATH); "
                       "install Debian's postgresql package (scripts/test.sh does so when run as root)")


class PostgresCluster:
    def __init__(self, start_timeout: int = 60):
        self.bin = postgres_bin_dir()
        self.root = Path(tempfile.mkdtemp(prefix="acr-gc-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self.port = free_port()
        self.host = "127.0.0.1"
        self._as_user: list[str] = []
        self.started = False
        try:
            if os.geteuid() == 0:
                # initdb/postgres refuse root: the cluster belongs to the postgres system user.
                try:
                    owner = pwd.getpwnam(SUPERUSER)
                except KeyError as exc:
                    raise RuntimeError("running as root but there is no 'postgres' system user "
                                       "(Debian's postgresql package creates it)") from exc
                os.chown(self.root, owner.pw_uid, owner.pw_gid)
                runuser = shutil.which("runuser")
                self._as_user = [runuser, "-u", SUPERUSER, "--"] if runuser else None
                if self._as_user is None:
                    raise RuntimeError("running as root and runuser is missing: cannot start PostgreSQL")
            os.chmod(self.root, 0o700)
            self._run(["initdb", "-D", str(self.data), "-U", SUPERUSER, "--auth=trust", "--encoding=UTF8",
                       "--locale=C", "--no-sync"], timeout=120)
            for attempt in range(3):  # a free port may be taken (by any outgoing connection) before postgres binds it
                if attempt:
                    self.port = free_port()
                options = (f"-k {self.root} -c listen_addresses={self.host} -p {self.port} "
                           "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=100")
                try:
                    self._run(["pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", str(start_timeout),
                               "-o", options, "start"], timeout=start_timeout + 30)
                except RuntimeError:
                    if attempt == 2 or "Address already in use" not in self.log_tail():
                        raise
                    continue
                break
            self.started = True
        except BaseException:
            self.stop()
            raise

    def _run(self, args: list[str], timeout: float) -> subprocess.CompletedProcess:
        command = [*self._as_user, str(self.bin / args[0]), *args[1:]]
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update(LC_ALL="C", LANG="C")
        try:
            result = subprocess.run(command, cwd=self.root, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise RuntimeError(f"{' '.join(command)} did not finish in {timeout}s\n{self.log_tail()}") from exc
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed (rc {result.returncode}):\n"
                               f"{result.stdout[-2000:]}\n{result.stderr[-2000:]}\n{self.log_tail()}")
        return result

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return "--- postgres.log ---\n" + self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def url(self, database: str, driver: str = "psycopg") -> str:
        return f"postgresql+{driver}://{SUPERUSER}@{self.host}:{self.port}/{database}"

    def create_database(self, name: str) -> None:
        import psycopg

        with psycopg.connect(host=self.host, port=self.port, user=SUPERUSER, dbname="postgres",
                             autocommit=True, connect_timeout=10) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')

    def stop(self) -> None:
        """Stop the server (immediate: it is thrown away) and delete the cluster."""
        try:
            if (self.data / "postmaster.pid").exists():
                try:
                    self._run(["pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "-t", "30", "stop"],
                              timeout=60)
                except RuntimeError:
                    pid_line = (self.data / "postmaster.pid").read_text().splitlines()[:1]
                    if pid_line and pid_line[0].strip().isdigit():
                        try:
                            os.kill(int(pid_line[0]), 9)
                        except ProcessLookupError:
                            pass
        finally:
            self.started = False
            shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_cluster():
    try:
        cluster = PostgresCluster()
    except Exception as exc:  # noqa: BLE001 - the message says what failed
        pytest.fail(f"could not start a throwaway PostgreSQL cluster: {exc}", pytrace=False)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def postgres_url(postgres_cluster) -> str:
    """The ledger's database on the throwaway cluster (SQLAlchemy URL, psycopg 3 driver)."""
    try:
        postgres_cluster.create_database("acr_gc")
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"could not create the acr_gc database: {exc}\n{postgres_cluster.log_tail()}", pytrace=False)
    return postgres_cluster.url("acr_gc")
