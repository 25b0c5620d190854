"""prefect.yaml's entrypoints are module paths (issue 14 item 4): what Prefect loads from
each is the installed package's own flow object, not a second copy of its file.

A file-path entrypoint (``acr_gc/flows/reclaim.py:reclaim_storage``) makes Prefect run the
file as a fresh module named ``reclaim``: a second ``reclaim_storage`` and second copies of
every class the file defines, which ``isinstance`` checks and pickled results then
disagree about. Loaded here with Prefect's own ``load_flow_from_entrypoint``, as the
worker does; the real ``prefect deploy --all`` + worker run is tests/deploy/test_deploy_monthly.py.
And the work pool's flow-run environment agrees with the CLI's defaults.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_every_entrypoint_loads_the_installed_flow_itself():
    from prefect.flows import load_flow_from_entrypoint

    deployments = yaml.safe_load((ROOT / "prefect.yaml").read_text(encoding="utf-8"))["deployments"]
    assert len(deployments) == 3
    for deployment in deployments:
        entrypoint = deployment["entrypoint"]
        module_name, name = entrypoint.rsplit(".", 1)
        before = set(sys.modules)
        loaded = load_flow_from_entrypoint(entrypoint, use_placeholder_flow=False)
        assert loaded is getattr(importlib.import_module(module_name), name), entrypoint
        assert module_name.startswith("acr_gc.flows.")
        assert not {m for m in set(sys.modules) - before if not m.startswith(("acr_gc", "prefect"))} & {
            "reclaim", "sample", "fleet"}, entrypoint


def test_the_work_pools_flow_run_env_carries_the_clis_defaults(monkeypatch):
    """prefect.yaml repeats, for flow runs a worker starts, the client-side defaults the CLI
    sets in ``quiet_defaults`` (loggers forwarded to the run, API retries): the two agree."""
    from acr_gc.prefect_api import quiet_defaults

    monkeypatch.setattr(os, "environ", {})  # what quiet_defaults sets when the user set nothing; restored after
    quiet_defaults()
    cli_client_defaults = {n: v for n, v in os.environ.items()
                           if n.startswith(("PREFECT_LOGGING_", "PREFECT_CLIENT_"))}
    work_pool_env = yaml.safe_load((ROOT / "prefect.yaml").read_text(encoding="utf-8"))[
        "definitions"]["work_pool"]["job_variables"]["env"]
    assert {n: str(v) for n, v in work_pool_env.items()} == cli_client_defaults
