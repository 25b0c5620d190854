"""The Prefect server on PostgreSQL: ``prefect server start`` (a subprocess in its own
process group) with ``PREFECT_SERVER_DATABASE_CONNECTION_URL`` on a second database of
the throwaway cluster (asyncpg driver), ``acr-gc plan`` against the emulator in a
subprocess with ``PREFECT_API_URL`` set, and the flow run read back through the API as
Completed, and from PostgreSQL's own ``flow_run`` table.

No flow runs in this process against this server: Prefect's process-wide events worker
stays bound to the session's test server (tests/conftest.py).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from emulator_kit import new_emulator
from prefect_server_kit import PrefectServer
from reporting_support import INSTANCE, ROOT, cli_env, config_dict, write_config

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def emu():
    from reporting_support import dataset

    with new_emulator(dataset()) as process:
        yield process


@pytest.fixture
def prefect_on_postgres(postgres_cluster):
    postgres_cluster.create_database("prefect")
    server = PrefectServer(database_url=postgres_cluster.url("prefect", driver="asyncpg"))
    try:
        yield server
    finally:
        server.stop()


def test_prefect_server_on_postgres_runs_a_plan_flow(emu, postgres_cluster, prefect_on_postgres, tmp_path):
    server = prefect_on_postgres
    config = config_dict(emu, tmp_path, "scheduled")
    config_path = write_config(config, tmp_path / "config.yaml")
    env = cli_env(server.api_url, PREFECT_HOME=str(tmp_path / "client-home"))
    result = subprocess.run([sys.executable, "-m", "acr_gc.cli", "plan", "--config", str(config_path)], env=env,
                            cwd=ROOT, capture_output=True, text=True, timeout=180, start_new_session=True)
    assert result.returncode == 0, f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}\n{server.output()}"

    # The flow run, through the server's API: Completed.
    response = httpx.post(f"{server.api_url}/flow_runs/filter", json={"limit": 10}, timeout=30, trust_env=False)
    response.raise_for_status()
    runs = response.json()
    assert len(runs) == 1, runs
    [run] = runs
    assert (run["state_type"], run["state"]["name"]) == ("COMPLETED", "Completed")
    flow = httpx.get(f"{server.api_url}/flows/{run['flow_id']}", timeout=30, trust_env=False).json()
    assert flow["name"] == "plan-instance"
    task_runs = httpx.post(f"{server.api_url}/task_runs/filter",
                           json={"flow_runs": {"id": {"any_": [run["id"]]}}}, timeout=30, trust_env=False).json()
    assert task_runs and all(t["state_type"] == "COMPLETED" for t in task_runs)
    assert (tmp_path / "out" / INSTANCE).is_dir()

    # ... and the same row in PostgreSQL: the server keeps its state there, not in SQLite.
    assert not list(Path(server.home).glob("*.db"))
    engine = create_engine(postgres_cluster.url("prefect"))
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("select id::text, state_type::text from flow_run")).all()
    finally:
        engine.dispose()
    assert rows == [(run["id"], "COMPLETED")]
