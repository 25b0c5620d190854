"""The ledger database locked or gone read-only: no change in the cloud that is not undone.

The ledger records every change before it is made, so a run that cannot write it must
stop before the first change, with one clear line. Against a real emulator (the
hand-worked instance of tests/pipeline/crash_support.py: 40 expired tags, a bucket policy
with one statement of its own) and the real ``acr-gc run``:

* the ledger's folder read-only (a read-only bind mount in a private mount namespace when
  the test may mount, as root may; else the file and folder chmod-ed read-only; else, root
  without mount rights, SQLite told to open it read-only);
* another process holding the ledger's write lock (``BEGIN IMMEDIATE``) for longer than
  the busy timeout (``?timeout=1`` in ``ledger.url``: nobody waits the default 30 s);
* the ledger's folder impossible to create (a path through a regular file).

Each must end with exit 2 and one line ``acr-gc: ledger <url>: …`` saying what is wrong,
and a background recorder of the emulator's truth must have seen no freeze statement, no
GC task and no other change. And a lock that appears while GC runs under the freeze: the
run fails, the GC task is stopped, and the freeze is undone anyway (thaw restores the
bucket before it records that it did); ``thaw`` reconciles the ledger once it is free.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pipeline"))
import crash_support as cs  # noqa: E402
import pipeline_support as ps  # noqa: E402

from emulator_kit import new_emulator  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

GC_RATE = 8  # tags per second: the 40 expired tags take 5 s, time to take the lock while GC runs
LOCKER = ("import sqlite3, sys\n"
          "db = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
          "db.execute('BEGIN IMMEDIATE')\n"
          "print('locked', flush=True)\n"
          "sys.stdin.read()\n")


@pytest.fixture(scope="module")
def emulator():
    with new_emulator(cs.dataset(cs.ORIGINAL_POLICY), gc_tags_per_second=GC_RATE) as emu:
        yield emu


@pytest.fixture
def fresh(emulator):
    emulator.load(cs.dataset(cs.ORIGINAL_POLICY))
    return emulator


def existing_ledger(workdir: Path, url: str | None = None) -> str:
    """A ledger that has served runs before: created, with its tables, then closed."""
    from acr_gc.ledger import Ledger

    url = url or f"sqlite:///{workdir / 'ledger.db'}"
    Ledger(url).dispose()
    return url


def config_with_ledger(emu, workdir: Path, ledger_url: str) -> Path:
    path = cs.write_config(workdir / "config.yaml", emu, workdir, poll_interval="PT0.2S")
    config = cs.config_dict(path)
    config["ledger"]["url"] = ledger_url
    return ps.write_config(config, path)


class WriteLock:
    """Another process holding the ledger's write lock until ``release``."""

    def __init__(self, database: Path):
        self.process = subprocess.Popen([sys.executable, "-c", LOCKER, str(database)], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True)
        assert self.process.stdout.readline().strip() == "locked", "the locker could not take the write lock"

    def release(self) -> None:
        self.process.stdin.close()
        self.process.wait(10)


# ---- a read-only ledger folder -------------------------------------------------------------------


def _can_mount() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "--", "true"], capture_output=True)
    return probe.returncode == 0


@contextmanager
def read_only(folder: Path, url: str):
    """(command prefix, ledger URL) under which ``folder`` cannot be written."""
    if _can_mount():
        remount = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && shift && exec "$@"'
        yield ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", remount, "sh", str(folder)], url
    elif os.geteuid() != 0:
        modes = {path: path.stat().st_mode for path in [folder, *folder.iterdir()]}
        for path in modes:
            path.chmod(0o555 if path.is_dir() else 0o444)
        try:
            yield [], url
        finally:
            for path, mode in modes.items():
                path.chmod(mode)
    else:  # root without mount rights writes through any mode bits: SQLite opens it read-only
        yield [], url.replace("sqlite:///", "sqlite:///file:", 1) + "?mode=ro&uri=true"


# ---- the runs that must not start ------------------------------------------------------------------


def run_refused(emu, workdir: Path, ledger_url: str, prefix: list[str], prefect_api_url: str):
    config = config_with_ledger(emu, workdir, ledger_url)
    before = ps.cloud_state(emu.truth())
    env = ps.cli_env(prefect_api_url, cs.AK, cs.SECRET)
    with cs.TruthRecorder(emu, interval=0.1) as seen:
        result = subprocess.run(prefix + ps.cli_args("run", "--config", str(config)), env=env, cwd=ps.ROOT,
                                capture_output=True, text=True, timeout=180)
    explain = f"exit {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    assert seen.task_ids == set() and seen.policies == [cs.ORIGINAL_POLICY], f"the cloud changed\n{explain}"
    assert ps.cloud_state(emu.truth()) == before, f"the cloud changed\n{explain}"
    assert result.returncode == 2, explain
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"acr-gc: ledger {ledger_url}: "), explain
    return last


def test_read_only_ledger_stops_the_run_before_any_change(fresh, tmp_path, prefect_api_url):
    """The ledger's folder read-only: exit 2, one line saying the ledger cannot be written."""
    folder = tmp_path / "ledger"
    url = existing_ledger(folder)
    with read_only(folder, url) as (prefix, ro_url):
        last = run_refused(fresh, tmp_path, ro_url, prefix, prefect_api_url)
    assert "cannot write to it" in last and "writable" in last, last


def test_locked_ledger_stops_the_run_before_any_change(fresh, tmp_path, prefect_api_url):
    """Another process holds the write lock longer than the busy timeout (1 s here):
    exit 2, one line saying the ledger is locked, and nothing changed while it waited."""
    url = existing_ledger(tmp_path) + "?timeout=1"
    lock = WriteLock(tmp_path / "ledger.db")
    try:
        last = run_refused(fresh, tmp_path, url, [], prefect_api_url)
    finally:
        lock.release()
    assert "locked by another process for more than 1 s" in last, last


def test_ledger_folder_that_cannot_be_created_is_bad_input(fresh, tmp_path, prefect_api_url):
    """The ledger's folder lies under a regular file: exit 2, one line naming the folder."""
    (tmp_path / "a-file").write_text("not a folder", encoding="utf-8")
    url = f"sqlite:///{tmp_path / 'a-file' / 'ledgers' / 'ledger.db'}"
    last = run_refused(fresh, tmp_path, url, [], prefect_api_url)
    assert f"cannot create its folder {tmp_path / 'a-file' / 'ledgers'}" in last, last


# ---- the lock arriving while GC runs under the freeze -----------------------------------------------


def test_lock_during_gc_still_thaws_and_stops_gc(fresh, tmp_path, prefect_api_url, monkeypatch):
    """The write lock is taken while GC runs and the bucket is frozen. The run cannot
    record GC progress: it fails with the ledger's one line, stops its GC task, and puts
    the bucket's own policy back (JSON-equal); only planned tags were deleted. Once the
    lock is gone, thaw finds the freeze still marked applied and closes it."""
    from acr_gc.config import Config
    from acr_gc.ledger import Ledger
    from acr_gc.tasks.freeze import outstanding_freezes, thaw_bucket
    from acr_gc.cloud.clients import oss_client

    url = existing_ledger(tmp_path) + "?timeout=1"
    config = cs.config_dict(config_with_ledger(fresh, tmp_path, url))
    lock: list[WriteLock] = []

    def lock_when_gc_runs_frozen() -> None:
        cs.wait_for("GC running under the freeze", cs.gc_running_and_frozen(fresh), 60, fresh, interval=0.05)
        lock.append(WriteLock(tmp_path / "ledger.db"))

    locker = threading.Thread(target=lock_when_gc_runs_frozen, daemon=True)
    with cs.TruthRecorder(fresh, interval=0.1) as seen:
        locker.start()
        state, folder = ps.run_flow(config, monkeypatch, ak=cs.AK, secret=cs.SECRET)
        locker.join(60)
    try:
        assert lock, "the lock was never taken: GC never ran under the freeze"
        truth = fresh.truth()
        assert state.is_failed(), state
        assert "locked by another process" in state.message and "\n" not in state.message, state.message
        assert len(seen.task_ids) == 1 and cs.gc_tasks(truth)[0]["state"] in ("CANCELED", "SUCCESS"), truth
        assert len(seen.policies) == 3 and cs.freeze_sids(seen.policies[1]), seen.policies
        assert json.dumps(cs.bucket_policy(truth), sort_keys=True) == json.dumps(cs.ORIGINAL_POLICY, sort_keys=True)
        left = {(repo.split("/")[0], repo.split("/")[1], tag)
                for repo, tags in truth["instances"][cs.INSTANCE]["tags"].items() for tag in tags}
        deleted = {(repo.split("/")[0], repo.split("/")[1], tag)
                   for repo, tags in cs.ALL_TAGS.items() for tag in tags} - left
        assert deleted <= cs.EXPIRED, deleted - cs.EXPIRED
        summary = ps.summary_of(folder)  # written although the ledger refused the run's end
        assert summary["state"] == "FAILED" and summary["gc"]["task_id"] == next(iter(seen.task_ids)), summary
    finally:
        for held in lock:
            held.release()

    ledger = Ledger(url)
    try:
        parsed = Config.model_validate(config)
        assert [f.status for f in outstanding_freezes(ledger, cs.BUCKET)] == ["applied"]
        thaw_bucket(oss_client(parsed), ledger)
        assert outstanding_freezes(ledger, cs.BUCKET) == []
    finally:
        ledger.dispose()
    assert json.dumps(cs.bucket_policy(fresh.truth()), sort_keys=True) == json.dumps(cs.ORIGINAL_POLICY,
                                                                                     sort_keys=True)
