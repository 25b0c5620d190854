"""Clients built once per run (issue 14, item 2): a run with ``credentials: block:<name>``
loads the Block once and builds each cloud adapter once, whatever number of steps use it.

Two witnesses, each able to fail:

* the Prefect server: the flow's Prefect API traffic goes through a recording proxy (this
  process's ``PREFECT_API_URL`` points at it, forwarding to the session's server), and the
  Block document reads (``GET …/block_documents/name/<name>``) are counted there —
  independent of acr-gc's code;
* the adapters' constructors (acr-gc's own classes, wrapped to count, the SDK untouched):
  one ``AcrClient`` for the instance, one ``OssClient`` for the bucket, one
  ``RegistryClient`` — the same objects handed from step to step.

Plus a scan: outside ``acr_gc/cloud`` no module builds an adapter itself; steps receive one.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from pathlib import Path

import pytest

from acr_gc.emulator.process import EmulatorProcess
from proxy_kit import PrefectApiProxy
from pipeline_support import OPS_AK, OPS_SECRET, config_dict, dataset, summary_of

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
BLOCK = "acr-gc-clients-once"


@pytest.fixture(scope="module")
def emu():
    with EmulatorProcess(dataset(), gc_tags_per_second=50) as process:
        yield process


@pytest.fixture
def counted(monkeypatch):
    """Count constructions of acr-gc's adapters (per class and instance/bucket)."""
    from acr_gc.cloud.acr import AcrClient
    from acr_gc.cloud.oss import OssClient
    from acr_gc.cloud.registry import RegistryClient

    built: Counter = Counter()
    for cls, key in ((AcrClient, "instance_id"), (OssClient, "bucket"), (RegistryClient, "instance_id")):
        original = cls.__init__

        def init(self, *args, __original=original, __cls=cls, __key=key, **kwargs):
            __original(self, *args, **kwargs)
            built[(__cls.__name__, getattr(self, __key))] += 1

        monkeypatch.setattr(cls, "__init__", init)
    return built


def _block_config(emu, tmp_path: Path) -> dict:
    from acr_gc.cloud.credentials import AlibabaCloudCredentials

    AlibabaCloudCredentials(access_key_id=OPS_AK, access_key_secret=OPS_SECRET).save(BLOCK, overwrite=True)
    config = config_dict((emu.acr_endpoint, emu.oss_endpoint), tmp_path, "cri-run", "cri-run-storage")
    config["target"]["credentials"] = f"block:{BLOCK}"
    config["target"]["registry_endpoint"] = emu.registry_endpoint  # the exact forecast: the registry too
    return config


@pytest.fixture(scope="module")
def events_to_the_server(prefect_api_url):
    """Prefect's process-wide events worker, started now on the real server: started inside
    the proxied block it would stay bound to the proxy after it closes (one an earlier file
    of this process left behind is stopped by ``tests/conftest.py`` before this file)."""
    from prefect import flow

    @flow(name="acr-gc-test-warm-up")
    def warm_up() -> None:
        return None

    warm_up()
    return prefect_api_url


def _through_proxy(prefect_api_url: str, proxy: PrefectApiProxy):
    from prefect.settings import PREFECT_API_URL, temporary_settings

    assert prefect_api_url.startswith("http://")
    return temporary_settings({PREFECT_API_URL: f"http://{proxy.endpoint}/api"})


def _block_reads(proxy: PrefectApiProxy) -> int:
    return sum(1 for method, path in proxy.snapshot()
               if method == "GET" and path.endswith(f"/block_documents/name/{BLOCK}"))


def _no_complaints(caplog) -> None:
    """No ERROR, and no warning from Prefect itself (client objects are task arguments now:
    no cache-key, hashing or serialisation complaint) — the run's own warnings aside."""
    complaints = [f"{r.name}: {r.getMessage()}" for r in caplog.records
                  if r.levelno >= logging.ERROR or (r.levelno >= logging.WARNING and (
                      re.search(r"cache|hash|serializ|pickl", r.getMessage(), re.I)
                      or (r.name.startswith("prefect") and not r.name.startswith(("prefect.flow_runs",
                                                                                   "prefect.task_runs")))))]
    assert not complaints, complaints


def test_a_whole_run_loads_the_block_once_and_builds_each_client_once(emu, events_to_the_server, prefect_api_url, tmp_path,
                                                                      monkeypatch, counted, caplog):
    from acr_gc.config import Config
    from acr_gc.flows.reclaim import reclaim_storage
    from acr_gc.reports.files import new_run_id

    emu.load(dataset())
    monkeypatch.delenv("ALIBABA_CLOUD_ACCESS_KEY_ID", raising=False)  # the block is the only source
    monkeypatch.delenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", raising=False)
    config = _block_config(emu, tmp_path)
    upstream = prefect_api_url.split("//", 1)[1].split("/", 1)[0]
    run_id = new_run_id()
    with PrefectApiProxy(upstream) as proxy, _through_proxy(prefect_api_url, proxy):
        state = reclaim_storage(Config.model_validate(config), run_id=run_id, return_state=True)
    assert state.is_completed(), state.message
    summary = summary_of(Path(config["report"]["out_dir"]) / "cri-run" / run_id)
    assert summary["state"] == "GC_DONE" and summary["gc"]["tags_deleted"] == 7  # the run did its work

    assert any(path.endswith("/set_state") for _, path in proxy.snapshot())  # the flow ran through it
    assert _block_reads(proxy) == 1
    assert counted[("AcrClient", "cri-run")] == 1, counted
    assert counted[("OssClient", "cri-run-storage")] == 1, counted
    assert counted[("RegistryClient", "cri-run")] == 1, counted
    _no_complaints(caplog)


def test_a_plan_loads_the_block_once_and_builds_each_client_once(emu, events_to_the_server, prefect_api_url, tmp_path,
                                                                 monkeypatch, counted, caplog):
    from acr_gc.config import Config
    from acr_gc.flows.plan import plan_instance

    emu.load(dataset())
    monkeypatch.delenv("ALIBABA_CLOUD_ACCESS_KEY_ID", raising=False)
    monkeypatch.delenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", raising=False)
    config = _block_config(emu, tmp_path)
    upstream = prefect_api_url.split("//", 1)[1].split("/", 1)[0]
    with PrefectApiProxy(upstream) as proxy, _through_proxy(prefect_api_url, proxy):
        outcome = plan_instance(Config.model_validate(config))
    assert outcome.result.summary["tags_expired"] == 7  # the plan was made

    assert _block_reads(proxy) == 1
    assert counted[("AcrClient", "cri-run")] == 1, counted
    assert counted[("OssClient", "cri-run-storage")] == 1, counted
    assert counted[("RegistryClient", "cri-run")] == 1, counted
    _no_complaints(caplog)


def test_no_step_builds_an_adapter_itself():
    """Only acr_gc/cloud builds adapters (and the entry points build the one bundle)."""
    pattern = re.compile(r"\b(acr_client|oss_client|RegistryClient|AcrClient|OssClient)\(")
    offenders = []
    for path in sorted((ROOT / "acr_gc").rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        if relative.startswith("acr_gc/cloud/"):
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if pattern.search(line):
                offenders.append(f"{relative}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)
