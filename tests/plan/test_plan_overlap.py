"""The gate's reads overlap the inventory (issue 16) and change nothing else.

The plan flow starts the gate's reads on each tag batch as it completes. Against the
reads made one after the other (the inventory, the plan of all tags, then the gate reading
what it needs: the order the flow ran before), it must make the same ACR calls — counted by
action on the wire by a recording proxy — and reach the same verdicts. The generated
dataset has several tag batches, sync rules to a replica instance and bound build rules,
so every kind of gate read is made.
"""

from __future__ import annotations

from collections import Counter

import pandas as pd
import pytest

from acr_gc.emulator.generator import CREDENTIALS, generate

pytestmark = pytest.mark.slow

REPOS = 250  # three tag batches of at most 100 repositories


def _config(endpoint: str, oss_endpoint: str, out_dir):
    from acr_gc.config import Config

    return Config.model_validate({
        "target": {"region": "cn-hangzhou", "instance_id": "cri-gen", "bucket": "cri-gen-storage",
                   "acr_endpoint": endpoint, "oss_endpoint": oss_endpoint},
        "freeze": {"principals": ["acs:ram::1234567890:user/ci-pusher"]},
        "report": {"out_dir": str(out_dir)},
        "api": {"qps": 1000, "concurrency": 8},
    })


def test_overlapped_gate_reads_make_the_same_calls_and_verdicts(
        prefect_api_url, emulator, plan_cli, tmp_path, monkeypatch):
    from prefect import flow
    from prefect.task_runners import ThreadPoolTaskRunner

    from acr_gc.cloud import credentials
    from acr_gc.cloud.clients import CloudClients
    from acr_gc.tasks import planning

    emulator.load(generate(repos=REPOS, tags_per_repo=8, seed=3))
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", CREDENTIALS[0]["access_key_id"])
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", CREDENTIALS[0]["access_key_secret"])
    credentials.reset_chain()

    @flow(task_runner=ThreadPoolTaskRunner(max_workers=8))
    def one_after_the_other(config):
        clients = CloudClients.from_config(config)
        inventory = planning.take_inventory(config, clients)
        planned = planning.plan_retention(config, inventory)
        return planning.verify_regenerable(config, clients, inventory, planned).verdicts

    @flow(task_runner=ThreadPoolTaskRunner(max_workers=8))
    def overlapped(config):
        return planning.plan_instance_steps(config, CloudClients.from_config(config)).verdicts

    seen, verdicts = {}, {}
    for name, run in (("sequential", one_after_the_other), ("overlapped", overlapped)):
        with plan_cli.proxy(emulator.acr_endpoint, "acr") as proxy:
            verdicts[name] = run(_config(proxy.endpoint, emulator.oss_endpoint, tmp_path / name))
            seen[name] = Counter(action for *_, action in proxy.snapshot())

    sequential = seen["sequential"]
    assert sequential["ListRepoTag"] >= REPOS  # the inventory itself went through the proxy
    # every kind of gate read is exercised, so an overlapped read that went missing or doubled shows
    for action in ("ListRepoSyncRule", "GetRepoSourceCodeRepo", "ListRepoBuildRule"):
        assert sequential[action] > 0, (action, sequential)
    assert seen["overlapped"] == sequential
    pd.testing.assert_frame_equal(verdicts["overlapped"], verdicts["sequential"])
    assert verdicts["overlapped"]["expired"].any()
