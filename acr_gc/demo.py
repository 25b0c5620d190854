"""``acr-gc demo``: the whole pipeline on the bundled emulator, in a couple of minutes.

Starts the emulator on free ports with the bundled dataset and compressed days, runs
``reclaim_storage`` against it with inline sampling over the full release window, and
leaves the flow run in the local Prefect database (``prefect server start`` shows it
with its artifacts).
"""

from __future__ import annotations

import os
from importlib.resources import files as package_files
from pathlib import Path

import yaml

from acr_gc.config import Config
from acr_gc.emulator.dataset import BUNDLED_DEMO, load_dataset
from acr_gc.emulator.process import EmulatorProcess

DAY_SECONDS = 1.0  # one emulated day lasts one real second
GC_TAGS_PER_SECOND = 400.0


def demo_config(acr_endpoint: str, oss_endpoint: str, out_dir: Path, registry_endpoint: str | None = None) -> Config:
    data = package_files("acr_gc.emulator") / "data"
    raw = yaml.safe_load((data / "demo-config.yaml").read_text(encoding="utf-8"))
    raw["target"].update(acr_endpoint=acr_endpoint, oss_endpoint=oss_endpoint, registry_endpoint=registry_endpoint)
    raw["policy"]["regeneration_manifest"] = str(data / "demo-regeneration.csv")
    raw["sampling"].update(mode="inline", day_length=DAY_SECONDS)
    raw["report"]["out_dir"] = str(out_dir)
    raw["ledger"]["url"] = f"sqlite:///{(out_dir / 'ledger.db').resolve()}"
    return Config.model_validate(raw)


def demo_credentials() -> dict[str, str]:
    """The emulator dataset's own admin key (fake, local only), for the credential chain."""
    admin = load_dataset(BUNDLED_DEMO).credentials[0]
    return {
        "ALIBABA_CLOUD_ACCESS_KEY_ID": admin.access_key_id,
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET": admin.access_key_secret,
    }


def run_demo(out_dir: Path, run_id: str):
    """Run the pipeline once against a fresh emulator; returns the flow's final state."""
    from acr_gc.flows.reclaim import reclaim_storage
    from acr_gc.prefect_api import wait_for_prefect_api

    out_dir.mkdir(parents=True, exist_ok=True)
    os.environ.update(demo_credentials())
    with EmulatorProcess(BUNDLED_DEMO, day_seconds=DAY_SECONDS, gc_tags_per_second=GC_TAGS_PER_SECOND) as emulator:
        config = demo_config(emulator.acr_endpoint, emulator.oss_endpoint, out_dir, emulator.registry_endpoint)
        wait_for_prefect_api()  # the temporary server (if any) booted alongside the emulator
        return config, reclaim_storage(config, run_id=run_id, return_state=True)
