"""Shared fixtures: a real emulator and real SDK clients pointed at it.

* ``emulator_process`` (session): one emulator for the whole run (per xdist worker): a
  ``ThreadedEmulator`` through ``emulator_kit.new_emulator`` (the one place that chooses;
  the name stays from when it was a process), started on
  ``BASE_DATASET`` with ``--gc-tags-per-second 20`` (slow enough to cancel a GC part-way).
* ``emulator`` (function): the same emulator, ``reset()`` after the test (start dataset and
  start fault settings back), so tests may ``load`` datasets and ``set_faults`` freely.
* ``write_dataset``: writes a dataset dict to a temp file and returns its path.
* ``acr_client``: factory for ``alibabacloud_cr20181201.client.Client`` on the emulator.
* ``credentials``: the dataset credentials list for the default key.
* ``gc_call``: calls one of the emulator's GC actions through ``client.call_api``.
"""

from __future__ import annotations

import os
import tempfile

# Prefect must never touch the developer's ~/.prefect nor phone home from a test run;
# set before any test module imports prefect (a test may still point it elsewhere).
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="acr-gc-prefect-home-"))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
# What the CLI sets for every command (acr_gc.prefect_api.quiet_defaults) and prefect.yaml
# for deployments: the flows run here in-process, so the session sets it the same way.
os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "acr_gc")
os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")
# Not the CLI's PREFECT_CLIENT_MAX_RETRIES=7: a test process's Prefect workers, left with
# events for a test server that has stopped, would retry ~4 min at exit instead of ~1.

# The session's test servers (prefect_test_harness, one per xdist worker) skip the services
# no test reads: automations (triggers), the event store and the websocket event stream.
# Task runs still arrive (the task-run recorder stays on). Measured on
# tests/pipeline/test_pipeline_semantics.py: the server's CPU 23.5 -> 20.2 s.
for _service_off in ("PREFECT_SERVER_SERVICES_TRIGGERS_ENABLED", "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_ENABLED",
                     "PREFECT_SERVER_EVENTS_STREAM_OUT_ENABLED"):
    os.environ.setdefault(_service_off, "false")

import json
from pathlib import Path
from typing import Callable

import pytest

from acr_gc.prefect_api import DEFAULT_STARTUP_TIMEOUT_S, drain_prefect_workers
from emulator_kit import AK, SECRET, call_gc_action, make_acr_client, new_emulator


BASE_DATASET = {
    "clock": "2024-06-01T00:00:00Z",
    "credentials": [{"access_key_id": AK, "access_key_secret": SECRET, "principal": "ops"}],
    "layers": {},
    "instances": [],
    "buckets": [],
}


# The order files are handed to pytest-xdist workers in (scripts/test.sh: --dist loadfile
# --no-loadscope-reorder, so this collection order). xdist's own order puts the files with
# the most tests first, which hands out the one-test files that take minutes (30 CLI
# commands beside two CPU hogs, a demo, runs killed and resumed) last, where each became
# the suite's tail: the start-up-under-load test started at 354 s of a 716 s run and ended
# it. So: the longest files first, then every file with end-to-end (``slow``) tests, the
# quick unit files last to fill the gaps.
LONGEST_FIRST = (
    "reliability/test_startup_under_load.py",
    "pipeline/test_pipeline_crash.py",
    "reliability/test_kills.py",
    "reporting/test_reporting_demo.py",
    "pipeline/test_pipeline_semantics.py",
    "pipeline/test_pipeline_freeze.py",
)


def pytest_collection_modifyitems(items) -> None:
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}

    def rank(item) -> tuple[int, int]:
        path = item.path.as_posix()
        longest = next((i for i, name in enumerate(LONGEST_FIRST) if path.endswith(name)), len(LONGEST_FIRST))
        return longest, 0 if item.path in slow_files else 1

    items.sort(key=rank)  # stable: every file keeps its own order


@pytest.fixture(scope="module", autouse=True)
def _prefect_workers_start_afresh():
    """Every test file starts with no Prefect event or log worker in this process.

    Prefect keeps one events worker per process (its instance key does not include the
    API URL) and binds it to the API current when it started. A file that ran a flow against
    another server (a deployment test's, a recording proxy) would leave it bound there, and
    a later file's task runs — which reach the server as events — would go to that server
    or nowhere (seen: ``test_plan_task_runs`` found no task runs when it followed another
    file in the same xdist worker). Stopped here, the next event starts a worker bound to
    the API of the file that sends it."""
    drain_prefect_workers(timeout_s=15)
    yield


@pytest.fixture(scope="session")
def prefect_api_url():
    """ONE Prefect server (``prefect_test_harness``, temporary SQLite) for the whole session.

    Prefect keeps one process-wide events worker bound to the first API it talked to;
    task runs and artifacts travel as events, so two test servers in one process would
    send one server's events to the other (or to a stopped one). Every in-process test
    uses this server; tests that need a real ``prefect server`` process drain the clients
    before stopping it.

    It may start while the start-up-under-load test keeps the machine far over its cores
    (seen: not healthy after 90 s, and every test of that worker failed), so it gets the
    start-up budget the product gives its own temporary server."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=DEFAULT_STARTUP_TIMEOUT_S):
        yield PREFECT_API_URL.value()


@pytest.fixture
def credentials() -> list[dict]:
    """The dataset ``credentials`` entry matching ``acr_client()``'s default key."""
    return [{"access_key_id": AK, "access_key_secret": SECRET, "principal": "ops"}]


@pytest.fixture(scope="session")
def emulator_process(tmp_path_factory):
    path = tmp_path_factory.mktemp("emulator") / "base.json"
    path.write_text(json.dumps(BASE_DATASET), encoding="utf-8")
    with new_emulator(path, gc_tags_per_second=20) as emu:
        yield emu


@pytest.fixture
def emulator(emulator_process):
    yield emulator_process
    if emulator_process.alive:
        emulator_process.reset()


@pytest.fixture
def write_dataset(tmp_path) -> Callable[[dict], Path]:
    def write(dataset: dict, name: str = "dataset.json") -> Path:
        path = tmp_path / name
        path.write_text(json.dumps(dataset), encoding="utf-8")
        return path

    return write


@pytest.fixture
def acr_client(emulator):
    def factory(access_key_id: str = AK, secret: str = SECRET, **config):
        return make_acr_client(emulator.acr_endpoint, access_key_id, secret, **config)

    return factory


@pytest.fixture
def gc_call():
    return call_gc_action
